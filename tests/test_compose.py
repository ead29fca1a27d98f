"""compose.yaml, the Dockerfile and deploy/: checked by parsing (there is no Docker engine here).

`docker compose config` runs where a Docker client with the compose plugin exists; everything
else reads the files and compares them with the code they wire: the settings our image reads,
our routes, the headers media-auth signs, the CLI's subcommands and the README's port table.
"""

from __future__ import annotations

import argparse
import ast
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from importlib.metadata import distribution
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from coordinator.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
NGINX_TEMPLATE = ROOT / "deploy" / "nginx" / "templates" / "default.conf.template"
LIVEKIT_CONFIG = ROOT / "deploy" / "livekit" / "livekit.yaml"
EGRESS_CONFIG = ROOT / "deploy" / "livekit" / "egress.yaml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"

OUR_IMAGE = "meet-coordinator:"
COORDINATOR_PORT = 8071
# ``${NAME}``, ``${NAME:-default}``, ``${NAME:?message}`` (compose interpolation).
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])[^}]*)?\}")

# Ray's own variables, set on our image beside our settings (token authentication of the
# nodes and drivers, ray.md): ray/_private/authentication/authentication_token_setup.py reads
# RAY_AUTH_MODE, the C++ token loader RAY_AUTH_TOKEN.
RAY_VARIABLES = {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"}

# What each third-party image documents reading, and where (only the names compose.yaml may
# pass; a new one is added here with its source).
THIRD_PARTY_VARIABLES: dict[str, set[str] | re.Pattern[str]] = {
    # docker-library/postgres docker-entrypoint.sh
    "postgres": {"POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD", "PGDATA"},
    # livekit cmd/server/main.go (flag sources)
    "livekit/livekit-server": {
        "LIVEKIT_CONFIG",
        "LIVEKIT_KEYS",
        "LIVEKIT_REGION",
        "NODE_IP",
        "UDP_PORT",
        "REDIS_HOST",
        "REDIS_PASSWORD",
        "LIVEKIT_TURN_CERT",
        "LIVEKIT_TURN_KEY",
    },
    # livekit/egress cmd/server/main.go, pkg/config/service.go, README (storage.s3 from AWS_*)
    "livekit/egress": {
        "EGRESS_CONFIG_FILE",
        "EGRESS_CONFIG_BODY",
        "LIVEKIT_API_KEY",
        "LIVEKIT_API_SECRET",
        "LIVEKIT_WS_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
    },
    # MinIO's configuration variables (MINIO_ROOT_*, MINIO_NOTIFY_WEBHOOK_<KEY>_<TARGET>...)
    "minio/minio": re.compile(r"MINIO_[A-Z0-9_]+"),
    # mc: MC_HOST_<alias>
    "minio/mc": re.compile(r"MC_HOST_[A-Za-z0-9_]+"),
    # nginx image: 20-envsubst-on-templates.sh; the template's own placeholders are checked
    # against our settings below.
    "nginxinc/nginx-unprivileged": {
        "NGINX_ENVSUBST_FILTER",
        "NGINX_ENVSUBST_TEMPLATE_DIR",
        "NGINX_ENVSUBST_OUTPUT_DIR",
        "NGINX_ENVSUBST_TEMPLATE_SUFFIX",
    },
    # Grafana: any configuration key as GF_<SECTION>_<KEY>
    "grafana/grafana": re.compile(r"GF_[A-Z0-9_]+"),
    "redis": set(),
    "prom/prometheus": set(),
    "lasuite/meet-frontend": {"USER_NAME", "HOME"},
}

# CLI parts built on another branch (issue 10 point 2: ``serve --engine/--ray-address/--workers``
# and ``ray-hosts``). Until they exist in coordinator/cli.py, commands using them are checked
# for everything else; once they exist, test_pending_cli_parts_are_still_pending fails and this
# set must be emptied, so that the whole command line is parsed.
PENDING_CLI: set[str] = set()  # every command line of compose.yaml parses now


@cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    result = compose()["services"]
    assert isinstance(result, dict)
    return result


def our_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services().items() if str(s.get("image", "")).startswith(OUR_IMAGE)}


def image_name(service: Mapping[str, Any]) -> str:
    image = str(service["image"])
    return image.rsplit(":", 1)[0] if ":" in image.split("/")[-1] else image


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


@cache
def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: {line!r} is not NAME=value"
            assert name not in values, f".env.example sets {name} twice"
            values[name] = value
    return values


def interpolations(text: str) -> Iterator[tuple[str, str | None]]:
    for match in INTERPOLATION.finditer(text):
        yield match[1], match[2]


def resolve(text: str) -> str:
    """``text`` with compose's interpolation of .env.example (secrets filled with dummies)."""
    env = filled_env()
    return INTERPOLATION.sub(lambda m: env[m[1]], text)


@cache
def filled_env() -> dict[str, str]:
    env = dict(env_example())
    for name, value in env.items():
        if not value:
            env[name] = f"{name.lower()}-0123456789abcdef0123456789abcdef"
    return env


def command_line(service: Mapping[str, Any]) -> list[str]:
    """The argv a service runs: entrypoint + command, ``sh -c`` scripts split per command."""
    entrypoint = service.get("entrypoint") or ["meet-coordinator"]
    command = service.get("command") or []
    if isinstance(command, str):
        command = shlex.split(command)
    return [*entrypoint, *command]


def our_commands(service: Mapping[str, Any]) -> list[list[str]]:
    argv = command_line(service)
    if argv[:2] in (["sh", "-c"], ["sh", "-euc"]):
        script = " ".join(argv[2:])
        return [shlex.split(part.replace("exec ", "", 1)) for part in script.split("&&")]
    return [argv]


@cache
def routes() -> set[tuple[str, str]]:
    import api.app  # noqa: F401  (registers every route)
    from api.openapi import REGISTRY

    return {(route.method, route.path) for route in REGISTRY.routes}  # type: ignore[attr-defined]


@cache
def setting_names() -> set[str]:
    """Every variable coordinator/settings.py reads: the string arguments of its ``env`` calls
    (aliases included), plus what ``Settings.from_env`` actually asks an environment for."""
    from coordinator.settings import Settings

    source = (ROOT / "coordinator" / "settings.py").read_text()
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        on_env = isinstance(node.func, ast.Attribute) and (
            isinstance(node.func.value, ast.Name) and node.func.value.id == "env"
        )
        passes_env = any(isinstance(a, ast.Name) and a.id == "env" for a in node.args)
        if not (on_env or passes_env):
            continue
        for arg in node.args:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                if re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+", arg.value):
                    names.add(arg.value)

    class Recorder(dict[str, str]):
        def get(self, key: str, default: Any = None) -> Any:
            asked.add(key)
            return super().get(key, default)

    asked: set[str] = set()
    base = {"SECRET_KEY": "s" * 40, "LIVEKIT_API_SECRET": "l" * 40}
    Settings.from_env(Recorder(base))
    Settings.from_env(Recorder({**base, "DB_ENGINE": "postgresql", "DB_NAME": "meet"}))
    # Read through a variable (``name = "…"; env.x(name)``) or as ``…_FILE``: still named here.
    spelled = {n for n in asked if n.endswith("_FILE") or f'"{n}"' in source}
    assert asked - names <= spelled, asked - names - spelled
    return names | asked


def composed_settings() -> Settings:
    """The coordinator's settings from compose.yaml's environment and .env.example."""
    from coordinator.settings import Settings

    env = environment(services()["coordinator"])
    return Settings.from_env({k: resolve(v) for k, v in env.items()})


# -- docker compose config (needs the client) --------------------------------------------------


def docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=20)
    return probe.returncode == 0


def test_docker_compose_config(tmp_path: Path) -> None:
    if not docker_compose_available():
        pytest.skip("no Docker client with the compose plugin here: the YAML checks below ran")
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in filled_env().items()))
    base = ["docker", "compose", "-f", str(COMPOSE), "--env-file", str(env_file)]
    for profile in ([], ["--profile", "frontend"]):
        checked = subprocess.run(
            [*base, *profile, "config", "--quiet"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert checked.returncode == 0, checked.stderr


# -- services, images, ports -------------------------------------------------------------------


def test_every_service_has_an_image_or_a_build() -> None:
    for name, service in services().items():
        assert service.get("image") or service.get("build"), name
    ours = our_services()
    assert {"migrate", "ray-head", "ray-worker", "ray-hosts", "coordinator"} <= set(ours)
    built = [n for n, s in ours.items() if s.get("build")]
    assert len(built) == 1, built  # one image, built once
    assert ours[built[0]]["build"]["dockerfile"] == "Dockerfile"
    for name, service in ours.items():
        if not service.get("build"):
            assert service.get("pull_policy") == "never", name  # never pulled from a registry
    assert services()["frontend"]["image"].startswith("lasuite/meet-frontend:")
    assert services()["frontend"]["profiles"] == ["frontend"]
    for name, service in services().items():
        if name != "frontend":
            assert "profiles" not in service, name


def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Deployment (compose)")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_ports_are_published_where_the_readme_says() -> None:
    table: dict[str, set[str]] = {}
    for line in readme_section().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([a-z0-9-]+)`", cells[0]) if len(cells) >= 3 else None
        if match:
            table[match[1]] = set(re.findall(r"`([^`]+)`", cells[1]))
    assert set(table) == set(services()), "each service has one row in the README"
    for name, service in services().items():
        published = {str(p) for p in service.get("ports", [])}
        assert published == table[name], name
        for port in published:
            parts = port.split("/")[0].split(":")
            # Only LiveKit's media ports listen on every interface; the rest on loopback.
            if len(parts) != 3:
                assert name == "livekit" and parts[-1] in ("7881", "7882"), port
            else:
                assert parts[0] == "127.0.0.1", port


def test_every_interpolated_variable_is_in_env_example_with_no_secret() -> None:
    text = COMPOSE.read_text()
    used = dict(interpolations(text))
    assert used, "compose.yaml interpolates .env"
    missing = set(used) - set(env_example())
    assert not missing, f"add to .env.example: {sorted(missing)}"
    unused = set(env_example()) - set(used)
    assert not unused, f"not used by compose.yaml: {sorted(unused)}"
    required = {name for name, op in interpolations(text) if op == ":?"}
    assert {"SECRET_KEY", "LIVEKIT_API_SECRET", "OPS_TOKEN", "RAY_AUTH_TOKEN"} <= required
    for name in required:
        assert env_example()[name] == "", f".env.example must not hold a value for {name}"
    # The secret's source is a variable of .env too.
    for secret in compose()["secrets"].values():
        assert secret["environment"] in env_example()


def test_our_image_gets_only_our_settings() -> None:
    known = setting_names()
    assert {"DATABASE_URL", "DB_HOST", "RECORDING_STORAGE_EVENT_TOKEN", "OPS_TOKEN"} <= known
    for name, service in our_services().items():
        env = environment(service)
        unknown = set(env) - known - RAY_VARIABLES
        assert not unknown, f"{name}: not settings of ours: {sorted(unknown)}"
    # The values parse: the settings of the composed environment build without error.
    settings = composed_settings()
    assert settings.database_url.startswith("postgresql+asyncpg://meet:")
    assert settings.database_url.endswith("@postgresql:5432/meet")
    assert settings.recording_storage_event_enable and settings.recording_enable
    assert settings.s3.configured and settings.s3.endpoint_url == "http://minio:9000"
    header = settings.secure_proxy_ssl_header
    assert header is not None and (header[0].lower(), header[1]) == ("x-forwarded-proto", "https")


def test_third_party_images_get_variables_they_document() -> None:
    for name, service in services().items():
        if name in our_services():
            continue
        allowed = THIRD_PARTY_VARIABLES[image_name(service)]
        for variable in environment(service):
            if isinstance(allowed, re.Pattern):
                ok = allowed.fullmatch(variable) is not None
            else:
                ok = variable in allowed
            if image_name(service) == "nginxinc/nginx-unprivileged":
                ok = ok or variable in setting_names()  # the template's placeholders
            assert ok, f"{name}: {variable} is not a variable of {service['image']}"


def test_depends_on_names_known_services_without_a_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for name, service in services().items():
        deps = service.get("depends_on") or {}
        graph[name] = set(deps)
        assert graph[name] <= set(services()), f"{name} depends on {graph[name] - set(services())}"
        if isinstance(deps, dict):
            for dep, spec in deps.items():
                condition = spec["condition"]
                assert condition in (
                    "service_started",
                    "service_healthy",
                    "service_completed_successfully",
                )
                if condition == "service_healthy":
                    hc = services()[dep].get("healthcheck")
                    assert hc and not hc.get("disable"), f"{dep} has no healthcheck"
                    if dep in our_services():
                        assert hc.get("test"), dep
                if condition == "service_completed_successfully":
                    assert services()[dep].get("restart") == "no", dep
        for dep in graph[name]:
            assert "profiles" not in services()[dep], f"{name} needs optional {dep}"
    state: dict[str, str] = {}

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert state.get(node) != "open", f"cycle: {' -> '.join((*path, node))}"
        if state.get(node) == "done":
            return
        state[node] = "open"
        for dep in graph[node]:
            visit(dep, (*path, node))
        state[node] = "done"

    for node in graph:
        visit(node, ())
    assert "migrate" in graph["coordinator"] and "migrate" in graph["ray-hosts"]


# -- commands of our image ---------------------------------------------------------------------


def dockerfile_instruction(name: str) -> list[str]:
    lines = [ln for ln in DOCKERFILE.read_text().splitlines() if ln.startswith(f"{name} ")]
    assert lines, f"Dockerfile has no {name}"
    value = yaml.safe_load(lines[-1][len(name) + 1 :])  # exec form: a JSON array
    assert isinstance(value, list)
    return [str(v) for v in value]


def test_dockerfile_runs_our_console_script_as_non_root() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoint = dockerfile_instruction("ENTRYPOINT")
    assert entrypoint[0] in scripts, entrypoint
    from coordinator.cli import build_parser

    cmd = dockerfile_instruction("CMD")
    args = build_parser().parse_args(cmd)
    assert args.command == "serve" and args.port == COORDINATOR_PORT and args.host == "0.0.0.0"
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\s*$", text, re.M)
    assert "pip install ." in text
    user = [ln.split()[1] for ln in text.splitlines() if ln.startswith("USER ")]
    assert user and user[-1] not in ("root", "0"), user
    healthcheck = next(ln for ln in text.splitlines() if ln.startswith("HEALTHCHECK"))
    assert healthcheck
    assert f"http://127.0.0.1:{COORDINATOR_PORT}/__heartbeat__" in text
    assert ("GET", "/__heartbeat__") in routes()


def test_every_command_of_our_image_exists() -> None:
    from coordinator.cli import build_parser

    scripts = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])
    ray_scripts = {
        ep.name for ep in distribution("ray").entry_points if ep.group == "console_scripts"
    }
    seen_subcommands: set[str] = set()
    for name, service in our_services().items():
        for argv in our_commands(service):
            argv = [resolve(a) for a in argv]
            program, *args = argv
            if program == "ray":
                assert program in ray_scripts
                assert args[0] == "start", f"{name}: {argv}"
                continue
            assert program in scripts, f"{name}: {program}"
            seen_subcommands.add(args[0])
            pending = {a.split("=")[0] for a in args} & PENDING_CLI
            if pending:
                # Parse what exists today: the arguments without the pending flags and values.
                args = strip_pending(args)
                if not args:
                    continue
            parsed = build_parser().parse_args(args)
            if parsed.command == "serve":
                assert parsed.port == COORDINATOR_PORT and parsed.host == "0.0.0.0"
    assert {"migrate", "serve", "ray-hosts"} <= seen_subcommands
    serve = command_line(services()["coordinator"])
    script = " ".join(serve)
    assert "--engine ray --ray-address ray-head:6379 --workers auto" in script


def strip_pending(args: list[str]) -> list[str]:
    if args and args[0] in PENDING_CLI:
        return []
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg.split("=")[0] in PENDING_CLI:
            skip = "=" not in arg
            continue
        kept.append(arg)
    return kept


def test_pending_cli_parts_are_still_pending() -> None:
    from coordinator.cli import build_parser

    (action,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    subcommands: dict[str, argparse.ArgumentParser] = action.choices
    built = {p for p in PENDING_CLI if p in subcommands}
    built |= {p for p in PENDING_CLI if p in subcommands["serve"]._option_string_actions}
    assert not built, f"now in coordinator/cli.py, remove from PENDING_CLI: {sorted(built)}"


def test_ray_nodes_and_drivers_share_one_cluster() -> None:
    head, worker = services()["ray-head"], services()["ray-worker"]
    assert command_line(head)[:3] == ["ray", "start", "--head"]
    assert "--port=6379" in command_line(head) and "--block" in command_line(head)
    assert "--address=ray-head:6379" in command_line(worker) and "--block" in command_line(worker)
    for name in ("ray-hosts", "coordinator"):
        first = our_commands(services()[name])[0]
        # A driver needs a raylet of its own; with no CPU no room host is placed on it.
        assert first[:3] == ["ray", "start", "--address=ray-head:6379"], name
        assert "--num-cpus=0" in first, name
    for name, service in our_services().items():
        env = environment(service)
        assert env["RAY_AUTH_MODE"] == "token" and "RAY_AUTH_TOKEN" in env, name


# -- the wiring: LiveKit, MinIO, the media proxy, Prometheus, Grafana ----------------------------


def path_of(url: str) -> str:
    match = re.fullmatch(r"https?://([^/]+)(/.*)", url)
    assert match, url
    return match[2]


def host_of(url: str) -> str:
    match = re.fullmatch(r"https?://([^/:]+)(?::(\d+))?(/.*)?", url)
    assert match, url
    return match[1]


def test_livekit_webhooks_reach_our_route_signed_with_our_key() -> None:
    config = yaml.safe_load(LIVEKIT_CONFIG.read_text())
    coordinator_env = environment(services()["coordinator"])
    key = coordinator_env["LIVEKIT_API_KEY"]
    assert config["webhook"]["api_key"] == key
    (url,) = config["webhook"]["urls"]
    assert url == f"http://coordinator:{COORDINATOR_PORT}/api/v1.0/rooms/webhooks-livekit/"
    assert ("POST", path_of(url)) in routes()
    assert config["redis"]["address"] == "redis:6379"
    livekit = environment(services()["livekit"])
    assert livekit["LIVEKIT_KEYS"] == f"{key}: {coordinator_env['LIVEKIT_API_SECRET']}"
    assert config["rtc"]["tcp_port"] == 7881 and config["rtc"]["udp_port"] == 7882
    # The URL handed to browsers reaches this service inside the network too.
    api_url = resolve(coordinator_env["LIVEKIT_API_URL"])
    aliases = services()["livekit"]["networks"]["default"]["aliases"]
    assert host_of(api_url) in aliases
    egress = yaml.safe_load(EGRESS_CONFIG.read_text())
    assert egress["redis"]["address"] == config["redis"]["address"]
    assert egress["ws_url"] == "ws://livekit:7880"
    egress_env = environment(services()["egress"])
    assert egress_env["LIVEKIT_API_KEY"] == key
    assert egress_env["LIVEKIT_API_SECRET"] == coordinator_env["LIVEKIT_API_SECRET"]
    assert egress_env["AWS_ACCESS_KEY_ID"] == coordinator_env["AWS_S3_ACCESS_KEY_ID"]
    assert egress_env["AWS_SECRET_ACCESS_KEY"] == coordinator_env["AWS_S3_SECRET_ACCESS_KEY"]
    assert egress_env["EGRESS_CONFIG_FILE"] in str(services()["egress"]["volumes"])
    s3 = egress["storage"]["s3"]
    assert s3["endpoint"] == coordinator_env["AWS_S3_ENDPOINT_URL"]
    assert s3["bucket"] == env_example()["AWS_STORAGE_BUCKET_NAME"]
    assert s3["force_path_style"] is True
    for path in (LIVEKIT_CONFIG, EGRESS_CONFIG):
        assert "secret" not in yaml.safe_load(path.read_text()).get("keys", {}), path


def test_minio_notifies_our_storage_hook_with_the_token() -> None:
    minio = environment(services()["minio"])
    coordinator_env = environment(services()["coordinator"])
    targets = {k.rsplit("_", 1)[1] for k in minio if k.startswith("MINIO_NOTIFY_WEBHOOK_ENABLE_")}
    assert len(targets) == 1
    (target,) = targets
    assert minio[f"MINIO_NOTIFY_WEBHOOK_ENABLE_{target}"] == "on"
    endpoint = minio[f"MINIO_NOTIFY_WEBHOOK_ENDPOINT_{target}"]
    assert host_of(endpoint) == "coordinator"
    assert ("POST", path_of(endpoint)) in routes()
    assert path_of(endpoint) == "/api/v1.0/recordings/storage-hook/"
    token = coordinator_env["RECORDING_STORAGE_EVENT_TOKEN"]
    assert minio[f"MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_{target}"] == f"Bearer {token}"
    assert coordinator_env["RECORDING_STORAGE_EVENT_ENABLE"] == "true"
    assert coordinator_env["RECORDING_ENABLE_STORAGE_EVENT_AUTH"] == "true"
    assert coordinator_env["RECORDING_EVENT_PARSER_CLASS"] == "minio"
    queue = minio[f"MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_{target}"]
    assert any(str(v).endswith(f":{queue}") for v in services()["minio"]["volumes"])
    # The event rule: put events of the recordings folder of our bucket, to that target.
    setup = " ".join(command_line(services()["minio-setup"]))
    bucket = coordinator_env["AWS_STORAGE_BUCKET_NAME"]
    folder = coordinator_env["RECORDING_OUTPUT_FOLDER"]
    rule = re.search(
        r"mc event add --ignore-existing (\S+) (\S+) --event put --prefix (\S+)", setup
    )
    assert rule, setup
    assert rule[1] == f"meet/{bucket}"
    assert rule[2] == f"arn:minio:sqs::{target}:webhook"
    assert rule[3] == f"{folder}/"
    assert f"mc mb --ignore-existing meet/{bucket}" in setup
    user = coordinator_env["AWS_S3_ACCESS_KEY_ID"]
    assert f"mc admin user add meet {user} {coordinator_env['AWS_S3_SECRET_ACCESS_KEY']}" in setup
    mc_host = environment(services()["minio-setup"])["MC_HOST_meet"]
    assert mc_host == f"http://{minio['MINIO_ROOT_USER']}:{minio['MINIO_ROOT_PASSWORD']}@minio:9000"


def nginx_locations(text: str) -> dict[str, str]:
    """``location`` blocks of the template (no nested blocks in ours): prefix -> body."""
    return {
        m[1].strip(): m[2]
        for m in re.finditer(r"^\s*location\s+([^{]+?)\s*\{(.*?)^\s*\}", text, re.M | re.S)
    }


def test_media_proxy_asks_media_auth_and_replays_its_signature() -> None:
    from coordinator.object_storage import ObjectStorage

    text = NGINX_TEMPLATE.read_text()
    locations = nginx_locations(text)
    media = locations["/media/"]
    auth = re.search(r"auth_request\s+(\S+);", media)
    assert auth, "auth_request in /media/"
    auth_location = locations[f"= {auth[1]}"]
    assert re.search(r"^\s*internal;", auth_location, re.M)
    upstream = re.search(r"proxy_pass\s+http://coordinator(/\S*);", auth_location)
    assert upstream and ("GET", upstream[1]) in routes()
    assert upstream[1] == "/api/v1.0/recordings/media-auth/"
    assert re.search(r"proxy_set_header\s+X-Original-URL\s+\$request_uri;", auth_location)
    assert "proxy_pass_request_body off;" in auth_location
    # Every header media-auth signs is captured from its answer and sent to MinIO.
    # (media-auth's own signing, with the object storage settings compose.yaml gives us)
    signed = ObjectStorage(composed_settings().s3).media_auth_headers("recordings/x.mp4")
    for header in signed:
        variable = re.search(
            rf"auth_request_set\s+(\$\w+)\s+\$upstream_http_{header.lower().replace('-', '_')};",
            media,
        )
        assert variable, f"{header} is not taken from media-auth's answer"
        assert re.search(rf"proxy_set_header\s+{header}\s+\{variable[1]};", media, re.I), header
    assert re.search(r'proxy_set_header\s+Cookie\s+"";', media)
    upstream_s3 = re.search(r"proxy_pass\s+(\S+);", media)
    assert upstream_s3 and upstream_s3[1] == "${AWS_S3_ENDPOINT_URL}/${AWS_STORAGE_BUCKET_NAME}/"
    assert signed["Host"] == "minio:9000"  # the host the signature covers is the one proxied to
    # The template's placeholders are our settings, given to the proxy with our values.
    placeholders = {name for name, _ in interpolations(text)}
    proxy_env = environment(services()["proxy"])
    coordinator_env = environment(services()["coordinator"])
    assert placeholders == {"AWS_S3_ENDPOINT_URL", "AWS_STORAGE_BUCKET_NAME"}
    for name in placeholders:
        assert proxy_env[name] == coordinator_env[name], name
    # The image substitutes only variables matching the filter (awk's ``name ~ /filter/``).
    for name in placeholders:
        assert re.search(proxy_env["NGINX_ENVSUBST_FILTER"], name), name
    assert "/etc/nginx/templates" in str(services()["proxy"]["volumes"])
    # The front door's other paths reach routes of ours; /metrics stays inside.
    for prefix in ("/api/", "= /__heartbeat__", "= /__lbheartbeat__"):
        assert "proxy_pass http://coordinator;" in locations[prefix], prefix
    assert "return 404;" in locations["= /metrics"]
    assert re.search(rf"server coordinator:{COORDINATOR_PORT};", text)
    assert re.search(r"listen 8083;", text)


def test_prometheus_scrapes_our_metrics_with_the_ops_token() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = config["scrape_configs"]
    assert ("GET", job["metrics_path"]) in routes()
    assert job["authorization"]["type"] == "Bearer"
    prometheus = services()["prometheus"]
    (secret,) = prometheus["secrets"]
    assert job["authorization"]["credentials_file"] == f"/run/secrets/{secret}"
    assert compose()["secrets"][secret]["environment"] == "OPS_TOKEN"
    assert environment(services()["coordinator"])["OPS_TOKEN"].startswith("${OPS_TOKEN")
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["coordinator"] and sd["port"] == COORDINATOR_PORT
    assert "/etc/prometheus/prometheus.yml" in str(prometheus["volumes"])


def test_grafana_is_provisioned_from_deploy() -> None:
    (datasource,) = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )["datasources"]
    assert datasource["type"] == "prometheus" and datasource["uid"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "meet-coordinator.yaml").read_text()
    )["providers"]
    mounts = dict(
        str(v).removesuffix(":ro").split(":", 1) for v in services()["grafana"]["volumes"]
    )
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert (GRAFANA / "dashboards").is_dir()
    for source in mounts:
        if source.startswith("./"):
            assert (ROOT / source).exists(), source
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source}"


TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def test_nginx_accepts_the_template(tmp_path: Path) -> None:
    """``nginx -t`` on the template as the image renders it, where an nginx binary exists
    (``NGINX_BINARY`` or ``nginx`` on PATH); the compose host names become loopback, which
    nginx resolves at start."""
    import os

    binary = os.environ.get("NGINX_BINARY") or shutil.which("nginx")
    if binary is None:
        pytest.skip("no nginx binary (set NGINX_BINARY): the template's directives were not run")
    proxy_env = {k: resolve(v) for k, v in environment(services()["proxy"]).items()}
    rendered = INTERPOLATION.sub(lambda m: proxy_env[m[1]], NGINX_TEMPLATE.read_text())
    rendered = rendered.replace("coordinator:", "127.0.0.1:").replace("minio:", "127.0.0.1:")
    (tmp_path / "default.conf").write_text(rendered)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n"
        + "".join(f"  {kind}_temp_path {tmp_path}/{kind};\n" for kind in TEMP_PATHS)
        + f"  include {tmp_path}/default.conf;\n}}\n"
    )
    checked = subprocess.run(
        [binary, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr
