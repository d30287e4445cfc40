"""FastAPI dependencies (Annotated aliases), resolved from the app state the lifespan filled."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ragtune.settings import Settings
from serve.chat import ChatService
from serve.store.conversations import ConversationStore


def get_chat(request: Request) -> ChatService:
    return request.app.state.chat


def get_conversations(request: Request) -> ConversationStore:
    return request.app.state.conversations


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


ChatDep = Annotated[ChatService, Depends(get_chat)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ConversationsDep = Annotated[ConversationStore, Depends(get_conversations)]
