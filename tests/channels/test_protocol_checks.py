"""mypy holds every adapter to the protocols its spec promises: each adapter module ends with one
``_AS_…: type[Protocol] = Adapter`` line per promise, which mypy (``make test``) checks. This test
keeps those lines in step with the specs, so a new channel, or a new promise, gets its check."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from bot.channels import registry
from bot.channels.spec import ChannelSpec


def promised(spec: ChannelSpec) -> set[str]:
    found = {"ChatChannel" if spec.inbound else "Channel"}
    found |= {"Deletes"} if spec.can_delete else set()
    found |= {"SetsCommands"} if spec.commands else set()
    return found


def checked(module: str, adapter: str) -> set[str]:
    """The protocols the module's annotated ``type[…] = adapter`` lines name."""
    found = importlib.util.find_spec(module)
    assert found is not None and found.origin is not None
    tree = ast.parse(Path(found.origin).read_text())
    return {
        node.annotation.slice.id
        for node in tree.body
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.annotation, ast.Subscript)
        and isinstance(node.annotation.value, ast.Name)
        and node.annotation.value.id == "type"
        and isinstance(node.annotation.slice, ast.Name)
        and isinstance(node.value, ast.Name)
        and node.value.id == adapter
    }


@pytest.mark.parametrize("name", registry.known_channels())
def test_each_adapter_is_checked_by_mypy_against_what_its_spec_promises(name: str) -> None:
    spec = registry.spec(name)
    module, _, adapter = spec.adapter.partition(":")
    assert checked(module, adapter) == promised(spec)
