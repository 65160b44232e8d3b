"""Fixtures of the LM-type tests."""

from __future__ import annotations

import pytest

from lmhub.models.decoder import DecoderLM
from tests.lm.models import tiny_llama


@pytest.fixture
def model() -> DecoderLM:
    return tiny_llama()
