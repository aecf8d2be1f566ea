"""Named, registered screening components (feature extractors, classifiers, query strategies).

A configuration refers to components by name only, so it stays a small serialisable document;
an unknown name is answered with the valid options instead of a KeyError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from store.errors import ValidationError

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from a component name to its factory."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        self._docs: dict[str, str] = {}

    def register(
        self, name: str, *, doc: str = ""
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._factories[name] = factory
            self._docs[name] = doc or (factory.__doc__ or "").strip().split("\n")[0]
            return factory

        return decorate

    def names(self) -> list[str]:
        return sorted(self._factories)

    def describe(self) -> dict[str, str]:
        return {name: self._docs[name] for name in self.names()}

    def check(self, name: str) -> None:
        if name not in self._factories:
            raise ValidationError(
                f"unknown {self.kind} {name!r}",
                hint=f"valid {self.kind}s: {', '.join(self.names())}",
            )

    def create(self, name: str, **params: object) -> T:
        self.check(name)
        try:
            return self._factories[name](**params)
        except TypeError as exc:
            raise ValidationError(f"bad parameters for {self.kind} {name!r}: {exc}") from None


FEATURES: Registry[object] = Registry("feature extractor")
CLASSIFIERS: Registry[object] = Registry("classifier")
QUERIES: Registry[object] = Registry("query strategy")


def ensure_registered() -> None:
    """Import the modules whose import registers the built-in components."""
    import screening.features
    import screening.model  # noqa: F401
