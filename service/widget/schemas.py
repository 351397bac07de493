"""A widget's configuration: colours, title, greeting, position, strings, suggested questions.

Validation says what to fix: a colour that is not #rgb/#rrggbb, text that would be unreadable
on its background (WCAG AA contrast), or an AI disclosure that would say nothing.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

HEX_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
MIN_CONTRAST = 4.5  # WCAG AA for normal text
MIN_DISCLOSURE = 10  # characters: the AI disclosure can be reworded, never emptied


def _text(default: str) -> Any:
    return Field(default=default, min_length=1, max_length=300)


class Colours(BaseModel):
    """Hex colours; each text colour must be readable on the colour behind it."""

    model_config = ConfigDict(extra="forbid")

    accent: str = Field(default="#2457d6", description="Launcher, your messages, Send button.")
    accent_text: str = Field(default="#ffffff", description="Text on the accent colour.")
    background: str = Field(default="#ffffff", description="The panel.")
    text: str = Field(default="#101828", description="Text on the panel.")

    @field_validator("accent", "accent_text", "background", "text")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not HEX_COLOUR.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a colour: write it as #rgb or #rrggbb, e.g. #2457d6"
            )
        return value.lower()

    @model_validator(mode="after")
    def _readable(self) -> Colours:
        for front, back in (("accent_text", "accent"), ("text", "background")):
            ratio = contrast(getattr(self, front), getattr(self, back))
            if ratio < MIN_CONTRAST:
                raise ValueError(
                    f"{front} {getattr(self, front)} on {back} {getattr(self, back)} has contrast "
                    f"{ratio:.1f}:1; choose colours with at least {MIN_CONTRAST}:1 so it can be "
                    "read"
                )
        return self


class Strings(BaseModel):
    """Every text the widget shows, for translation or a brand's voice."""

    model_config = ConfigDict(extra="forbid")

    disclosure: str = Field(
        default="You are chatting with an AI assistant. It can make mistakes: check important "
        "details.",
        max_length=300,
        description="The AI disclosure, always shown; it can be reworded, not removed.",
    )
    launcher: str = _text("Chat with support")
    placeholder: str = _text("Ask a question…")
    send: str = _text("Send")
    human: str = _text("Talk to a human")
    human_requested: str = _text(
        "A human has been asked for. Someone from our team will reply here."
    )
    helpful: str = _text("Helpful")
    not_helpful: str = _text("Not helpful")
    comment_placeholder: str = _text("Tell us more (optional)")
    comment_send: str = _text("Send comment")
    thanks: str = _text("Thanks for the feedback.")
    sources: str = _text("Sources")
    retry: str = _text("Retry")
    network_error: str = _text("The message could not be sent: the connection dropped.")
    truncated: str = _text("This answer was cut short.")
    close: str = _text("Close chat")
    answering: str = _text("Answering…")

    @field_validator("disclosure")
    @classmethod
    def _says_something(cls, value: str) -> str:
        if len(value.strip()) < MIN_DISCLOSURE:
            raise ValueError(
                "the AI disclosure is always shown and cannot be removed: give it a wording of "
                f"at least {MIN_DISCLOSURE} characters, e.g. 'You are chatting with an AI "
                "assistant.'"
            )
        return value.strip()


class WidgetConfig(BaseModel):
    """A publishable key's widget; fields left out take their defaults."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "Halcyon Home support",
                    "greeting": "Hi! Ask me about your router, thermostat or camera.",
                    "position": "bottom-right",
                    "colours": {"accent": "#0f766e"},
                    "suggested_questions": ["My router shows error E3, what do I do?"],
                }
            ]
        },
    )

    title: str = Field(default="Support", min_length=1, max_length=80)
    greeting: str = Field(default="Hi! How can I help you today?", max_length=500)
    position: Literal["bottom-right", "bottom-left"] = "bottom-right"
    language: str = Field(
        default="en", pattern=r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$", description="BCP 47 tag."
    )
    colours: Colours = Field(default_factory=Colours)
    strings: Strings = Field(default_factory=Strings)
    suggested_questions: list[str] = Field(default=[], max_length=6)
    product: str | None = Field(
        default=None, max_length=100, description="Product id the widget's questions are about."
    )

    @field_validator("suggested_questions")
    @classmethod
    def _questions(cls, questions: list[str]) -> list[str]:
        for question in questions:
            if not 1 <= len(question.strip()) <= 200:
                raise ValueError("each suggested question needs 1 to 200 characters")
        return [q.strip() for q in questions]


def contrast(first: str, second: str) -> float:
    """The WCAG contrast ratio of two hex colours (1 to 21)."""
    lighter, darker = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _luminance(colour: str) -> float:
    digits = colour[1:]
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
