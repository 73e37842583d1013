"""The lazily resolved public API of ``prm_probe``."""

from __future__ import annotations

import importlib

import pytest

import prm_probe


@pytest.mark.parametrize("name", sorted(prm_probe._EXPORTS))
def test_every_public_name_resolves_to_its_module_object(name):
    module = importlib.import_module(prm_probe._EXPORTS[name])
    assert getattr(prm_probe, name) is getattr(module, name)
    assert name in dir(prm_probe) and name in module.__all__


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        prm_probe.nope  # noqa: B018
