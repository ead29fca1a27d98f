// The calls La Suite Meet's web app makes, as shared/reference/frontend-calls.md lists them:
// exact paths (slashless `users/me` and `logout`), credentials included, a JSON content type on
// every request, X-CSRFToken from the readable cookie, and the app's reading of each status.
// Written for this project; the Python tests call these functions through page.evaluate.
'use strict';

const API = '/api/v1.0/';

function csrfToken() {
  const cookie = document.cookie.split('; ').find((c) => c.startsWith('csrftoken='));
  return cookie ? cookie.slice('csrftoken='.length) : null; // the raw value, as fetchApi sends it
}

async function api(path, { method = 'GET', body, headers = {} } = {}) {
  const sent = { 'Content-Type': 'application/json' };
  const csrf = csrfToken();
  if (csrf) sent['X-CSRFToken'] = csrf;
  const response = await fetch(API + path, {
    method,
    credentials: 'include',
    headers: { ...sent, ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const type = response.headers.get('Content-Type') || '';
  const json = response.status !== 204 && type.includes('application/json');
  return {
    status: response.status,
    redirected: response.redirected,
    url: response.url,
    body: json ? await response.json() : null,
  };
}

const timezone = () => Intl.DateTimeFormat().resolvedOptions().timeZone;

window.meet = {
  api,
  csrfToken,
  config: () => api('config/'),
  // useUser: 200 = logged in, 401 = logged out, anything else = undecided (pages load forever).
  async whoAmI() {
    const me = await api('users/me');
    const loggedIn = me.status === 200 ? true : me.status === 401 ? false : null;
    return { ...me, loggedIn };
  },
  login() {
    location.href = `${API}authenticate/?silent=false&returnTo=${encodeURIComponent(location.href)}`;
  },
  // silentLogin.ts: after a 401, when the config allows it; must come back even without an IdP session.
  silentLogin() {
    location.href = `${API}authenticate/?silent=true&returnTo=${encodeURIComponent(location.href)}`;
  },
  logout() {
    location.href = `${API}logout`;
  },
  // useSyncUserPreferencesWithBackend: the response must echo the new values.
  async syncPreferences(userId, language) {
    const sent = { timezone: timezone(), language };
    const answer = await api(`users/${userId}/`, { method: 'PUT', body: sent });
    const echoed = answer.status === 200
      && answer.body.language === sent.language && answer.body.timezone === sent.timezone;
    return { ...answer, sent, echoed };
  },
  createRoom: (slug, username = '') => api(
    `rooms/?username=${encodeURIComponent(username)}`, { method: 'POST', body: { name: slug } },
  ),
  patchRoom: (slug, changes) => api(`rooms/${slug}/`, { method: 'PATCH', body: changes }),
  // Join screen: livekit → enter; none → lobby; 404 → create it; other errors → lobby.
  async join(slug, username) {
    const query = username ? `?username=${encodeURIComponent(username)}` : '';
    const room = await api(`rooms/${slug}/${query}`);
    const decision = room.status === 404 ? 'create' : room.body && room.body.livekit ? 'enter' : 'lobby';
    return { ...room, decision };
  },
  // useLobby: request-entry now and every 1000 ms until accepted or denied; errors keep polling.
  startLobby(slug, username) {
    const lobby = { polls: [], result: null };
    const poll = async () => {
      const answer = await api(`rooms/${slug}/request-entry/`, { method: 'POST', body: { username } });
      lobby.polls.push({ status: answer.status, id: answer.body && answer.body.id,
        entry: answer.body && answer.body.status });
      if (answer.status === 200 && ['accepted', 'denied'].includes(answer.body.status)) {
        clearInterval(lobby.timer);
        lobby.result = answer.body;
      }
    };
    lobby.timer = setInterval(poll, 1000);
    window.lobby = lobby;
    poll();
  },
  lobbyState: () => ({ polls: window.lobby.polls, result: window.lobby.result }),
  waitingParticipants: (roomId) => api(`rooms/${roomId}/waiting-participants/`),
  enter: (roomId, participantId, allow) => api(`rooms/${roomId}/enter/`, {
    method: 'POST', body: { participant_id: participantId, allow_entry: allow },
  }),
};
