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


def room_json(view: RoomView) -> dict[str, Any]:
    room = view.room
    data: dict[str, Any] = {
        "id": str(room.id),
        "name": room.name,
        "slug": room.slug,
        "configuration": room.configuration,
        "access_level": room.access_level,
    }
    if view.accesses is not None:
        data["accesses"] = [
            {
                "id": str(access.id),
                "user": user_json(access.user) if access.user else None,
                "resource": str(access.resource_id),
                "role": access.role,
            }
            for access in view.accesses
        ]
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
