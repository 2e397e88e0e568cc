"""Fixtures: fake direct providers (and the fake Bedrock runtime) on loopback threads
(session-wide, request logs reset)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dexto.demo.stack import LocalStack
from dexto.devtools.fake_bedrock import FakeBedrock
from dexto.devtools.fake_direct import FakeDirect, create_app
from dexto.devtools.fake_upstream_server import ServerThread
from dexto.llm.execution import Model, open_model

KEYS = {
    "anthropic": "sk-ant-user-secret-f4k3",
    "openai": "sk-openai-user-secret-0p3n",
    "google": "AIza-user-secret-g00g",
    "cohere": "co-user-secret-c0h3",
    "bedrock": "AKIAUSERSECRETb3dr",  # the AWS access key ID
}
BASE_PATHS = {
    "anthropic": "/v1",
    "openai": "/v1",
    "google": "/v1beta",
    "cohere": "/v2",
    "bedrock": "",
}


class Fake:
    def __init__(self, app: FakeDirect | FakeBedrock, srv: ServerThread, kind: str) -> None:
        self.app, self.srv, self.kind = app, srv, kind

    @property
    def base_url(self) -> str:
        return self.srv.url + BASE_PATHS[self.kind]

    @property
    def requests(self) -> list[dict[str, object]]:
        return self.app.requests


@pytest.fixture(scope="session")
def fake_servers() -> Iterator[dict[str, Fake]]:
    fakes: dict[str, Fake] = {}
    try:
        for kind in ("anthropic", "openai", "google", "cohere", "bedrock"):
            app = FakeBedrock() if kind == "bedrock" else create_app(kind)
            fakes[kind] = Fake(app, ServerThread(app).start(), kind)
        yield fakes
    finally:
        for fake in fakes.values():
            fake.srv.stop()


@pytest.fixture
def fakes(fake_servers: dict[str, Fake]) -> dict[str, Fake]:
    for fake in fake_servers.values():
        fake.app.requests.clear()
    return fake_servers


def direct_env(fakes: dict[str, Fake], *kinds: str) -> dict[str, str]:
    """Environment with the user's key and base URL for each provider ``kind``."""
    env = dict(os.environ)  # already isolated: DEXTO_HOME is private, no host credentials
    for kind in kinds:
        prefix = kind.upper()
        if kind == "bedrock":  # boto3 signs with these; the fake reads the access key ID
            env.update(
                AWS_ACCESS_KEY_ID=KEYS[kind],
                AWS_SECRET_ACCESS_KEY="fake-aws-secret",
                AWS_REGION="us-east-1",
            )
        else:
            env[f"{prefix}_API_KEY"] = KEYS[kind]
        env[f"{prefix}_BASE_URL"] = fakes[kind].base_url
    return env


@pytest.fixture
def opened() -> Iterator[Callable[..., Model]]:
    """``opened(selection, **kw)``: ``open_model`` whose models are closed after the test."""
    models: list[Model] = []

    def make(*args: Any, **kwargs: Any) -> Model:
        models.append(open_model(*args, **kwargs))
        return models[-1]

    yield make
    for m in models:
        m.close()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Fake upstream + fake Anthropic + fake OpenAI + a real gateway, as processes."""
    with LocalStack(tmp_path_factory.mktemp("stack"), direct=("anthropic", "openai")) as s:
        yield s
