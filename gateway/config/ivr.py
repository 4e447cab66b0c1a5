"""The ``[ivr]`` section: the phone menu, its business hours, and its conversion to the IVR's own
``channels.twilio.Menu``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from gateway.config.sections import Section
from gateway.config.values import KindName

Digit = Annotated[StrictStr, Field(pattern=r"^[0-9]$")]
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ClockTime = Annotated[StrictStr, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


def _check_timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
    return value


class IvrOption(Section):
    digit: Digit
    label: Annotated[StrictStr, Field(min_length=1)]
    category: Annotated[StrictStr, Field(min_length=1)]
    kind: KindName = "incident"
    action: Literal["voicemail", "dial"] = "voicemail"  # what choosing it does (no submenu)
    number: Annotated[StrictStr, Field(pattern=r"^\+[1-9][0-9]{6,14}$")] | None = None  # dial
    prompt: StrictStr | None = None  # a submenu's introduction
    options: tuple[IvrOption, ...] = ()  # a submenu

    @model_validator(mode="after")
    def _consistent(self) -> IvrOption:
        if self.action == "dial" and not self.options and not self.number:
            raise ValueError(f'option {self.digit}: action = "dial" needs number (E.164)')
        digits = [o.digit for o in self.options]
        if len(digits) != len(set(digits)):
            raise ValueError(f"option {self.digit}: two submenu options use the same digit")
        return self

    def to_option(self) -> Any:
        """This option as the IVR's ``channels.twilio.MenuOption``."""
        from channels.twilio import MenuOption

        return MenuOption(
            digit=self.digit,
            label=self.label,
            category=self.category,
            kind=self.kind,
            action=self.action,
            dial_number=self.number,
            prompt=self.prompt,
            options=tuple(o.to_option() for o in self.options),
        )


class IvrHours(Section):
    timezone: Annotated[StrictStr, AfterValidator(_check_timezone)] = "UTC"
    days: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")
    open: ClockTime = "08:00"
    close: ClockTime = "18:00"

    @model_validator(mode="after")
    def _opens_before_closing(self) -> IvrHours:
        if self.open >= self.close:
            raise ValueError(f"open ({self.open}) must be before close ({self.close})")
        return self


class IvrSection(Section):
    greeting: StrictStr = "Welcome to the IT service desk."
    options: tuple[IvrOption, ...] = ()
    gather_timeout_seconds: Annotated[StrictInt, Field(ge=1, le=60)] = 5
    max_retries: Annotated[StrictInt, Field(ge=0, le=10)] = 2
    default_digit: Digit | None = None  # after max_retries; none: a message without a category
    recording_notice: Annotated[StrictStr, Field(min_length=1)] = (
        "This call is recorded so that we can help you. After the tone, please describe the "
        "problem, then hang up or press the pound key."
    )
    max_recording_seconds: Annotated[StrictInt, Field(ge=5, le=3600)] = 120
    transcribe: StrictBool = True
    voice: StrictStr | None = None  # a Twilio <Say> voice, e.g. "Polly.Joanna"
    language: StrictStr = "en-US"
    hours: IvrHours | None = None  # none: always open
    after_hours_message: StrictStr = (
        "The service desk is closed right now. Please leave a message and we will call you back."
    )
    recent_ticket_hours: Annotated[StrictFloat, Field(ge=0)] = 72.0  # 0: never offer
    add_to_ticket_digit: Digit = "9"

    @model_validator(mode="after")
    def _digits_free(self) -> IvrSection:
        digits = {o.digit for o in self.options}
        if self.default_digit is not None and self.default_digit not in digits:
            raise ValueError(f"default_digit {self.default_digit!r} is not an option's digit")
        if self.recent_ticket_hours > 0 and self.add_to_ticket_digit in digits:
            raise ValueError(
                f"digit {self.add_to_ticket_digit} is add_to_ticket_digit; "
                "choose another option digit or add_to_ticket_digit"
            )
        return self

    def to_menu(self) -> Any:
        """The whole section as the IVR's ``channels.twilio.Menu``."""
        from datetime import time

        from channels.twilio import BusinessHours, Menu

        hours = None
        if self.hours is not None:
            hours = BusinessHours(
                timezone=self.hours.timezone,
                days=frozenset(_WEEKDAYS.index(d) for d in self.hours.days),
                opens=time.fromisoformat(self.hours.open),
                closes=time.fromisoformat(self.hours.close),
            )
        return Menu(
            greeting=self.greeting,
            options=tuple(o.to_option() for o in self.options),
            gather_timeout_seconds=self.gather_timeout_seconds,
            max_retries=self.max_retries,
            default_digit=self.default_digit,
            recording_notice=self.recording_notice,
            max_recording_seconds=self.max_recording_seconds,
            transcribe=self.transcribe,
            voice=self.voice,
            language=self.language,
            hours=hours,
            after_hours_message=self.after_hours_message,
            recent_ticket_hours=self.recent_ticket_hours,
            add_to_ticket_digit=self.add_to_ticket_digit,
        )
