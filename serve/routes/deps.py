"""FastAPI dependencies (Annotated aliases), resolved from the app state the lifespan filled."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ragtune.settings import Settings
from serve.admin.models import ModelAdmin
from serve.admin.service import AdminService
from serve.chat import ChatService
from serve.store.conversations import Caller, ConversationStore


def get_chat(request: Request) -> ChatService:
    return request.app.state.chat


def get_conversations(request: Request) -> ConversationStore:
    return request.app.state.conversations


def get_caller(request: Request) -> Caller:
    """Who is calling, as a conversation records its owner: the key the access check identified
    (`request.state.principal`) and the request's origin, which that check has already allowed."""
    principal = getattr(request.state, "principal", None)
    key = f"{principal.kind}:{principal.name}" if principal is not None and principal.kind != "local" else "local"
    origin = request.headers.get("origin")
    return Caller(key, origin.strip().rstrip("/").lower() if origin else None)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_admin(request: Request) -> AdminService:
    return request.app.state.admin


def get_model_admin(request: Request) -> ModelAdmin:
    return request.app.state.model_admin


ChatDep = Annotated[ChatService, Depends(get_chat)]
AdminDep = Annotated[AdminService, Depends(get_admin)]
ModelAdminDep = Annotated[ModelAdmin, Depends(get_model_admin)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ConversationsDep = Annotated[ConversationStore, Depends(get_conversations)]
CallerDep = Annotated[Caller, Depends(get_caller)]
