"""The console's settings (TUNEDESK_CONSOLE__*), a part of the one Settings object."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ConsoleSettings(BaseModel):
    """Agent sessions, login limits and the retraining jobs the console starts."""

    session_ttl_s: int = Field(default=8 * 3600, ge=60, description="How long a login lasts.")
    invite_ttl_s: int = Field(default=7 * 24 * 3600, ge=60, description="Invitation validity.")
    login_per_ip: str = Field(default="20/minute", description="Login attempts per client IP.")
    login_per_account: str = Field(
        default="5/minute", description="Login attempts per tenant + email, wherever from."
    )
    secure_cookies: bool | None = Field(
        default=None, description="Send the session cookie over HTTPS only (default: production)."
    )
    low_queue_limit: int = Field(default=200, ge=1, description="Answers shown in the queue.")
