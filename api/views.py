"""Serialisation of domain values into the contract's JSON shapes."""

from __future__ import annotations

from typing import Any

from coordinator.rooms import RoomView, UnregisteredRoomView
from storage.records import AccessRecord, UserRecord


def user_json(user: UserRecord) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "email": user.email,
        "full_name": user.full_name,
        "short_name": user.short_name,
        "timezone": user.timezone,
        "language": user.language,
        "default_room_access_level": user.default_room_access_level or None,
        "default_room_configuration": user.default_room_configuration,
    }


def access_json(access: AccessRecord) -> dict[str, Any]:
    return {
        "id": str(access.id),
        "user": str(access.user_id),
        "resource": str(access.resource_id),
        "role": access.role,
    }


def room_json(view: RoomView, users: dict[Any, dict[str, Any]] | None = None) -> dict[str, Any]:
    """``users``: the user objects already made for this response, by user id (a list shows
    the caller in every room)."""
    room = view.room
    room_id = str(room.id)
    data: dict[str, Any] = {
        "id": room_id,
        "name": room.name,
        "slug": room.slug,
        "configuration": room.configuration,
        "access_level": room.access_level,
    }
    if view.accesses is not None:
        made = {} if users is None else users
        accesses = data["accesses"] = []
        for access in view.accesses:
            member = access.user
            if member is None:
                shown = None
            else:
                shown = made.get(member.id)
                if shown is None:
                    shown = made[member.id] = user_json(member)
            accesses.append(
                {
                    "id": str(access.id),
                    "user": shown,
                    "resource": room_id
                    if access.resource_id == room.id
                    else str(access.resource_id),
                    "role": access.role,
                }
            )
    if view.livekit is not None:
        data["pin_code"] = room.pin_code
        data["livekit"] = {
            "url": view.livekit.url,
            "room": view.livekit.room,
            "token": view.livekit.token,
        }
    return data


def unregistered_room_json(view: UnregisteredRoomView) -> dict[str, Any]:
    return {
        "id": None,
        "slug": view.slug,
        "is_administrable": False,
        "access_level": "public",
        "livekit": {
            "url": view.livekit.url,
            "room": view.livekit.room,
            "token": view.livekit.token,
        },
    }
