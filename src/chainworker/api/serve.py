"""The app factory uvicorn imports in each server process (`chainworker api`)."""

from __future__ import annotations

from fastapi import FastAPI

from chainworker.api.app import create_app
from chainworker.config import get_settings


def build() -> FastAPI:
    return create_app(get_settings())
