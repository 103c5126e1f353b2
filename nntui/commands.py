"""The command palette: every key binding of the screen it was opened over, searchable by
its description (posting's approach), so each action can be found without remembering keys."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode
from textual.screen import Screen


def screen_keys(
    screen: Screen, shown_only: bool = False
) -> Iterator[tuple[str, str, str, DOMNode]]:
    """(key as shown, description, action, node) for each described binding in force on
    `screen`, the app's included, without repeats; with `shown_only`, only those meant for
    a footer."""
    seen: set[tuple[str, str]] = set()
    for key, active in screen.active_bindings.items():
        binding = active.binding
        if not binding.description or (binding.action, binding.description) in seen:
            continue
        if shown_only and not binding.show:
            continue
        seen.add((binding.action, binding.description))
        shown = (
            screen.app.get_key_display(binding)
            if binding.key_display is None
            else binding.key_display
        )
        yield shown or key, binding.description, binding.action, active.node


class ActionCommands(Provider):
    """Palette entries for the keys of the screen below (see `screen_keys`)."""

    async def discover(self) -> Hits:
        for key, description, action, node in screen_keys(self.screen):
            yield DiscoveryHit(description, partial(self._run, action, node), help=f"key {key}")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for key, description, action, node in screen_keys(self.screen):
            score = matcher.match(description)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(description),
                    partial(self._run, action, node),
                    help=f"key {key}",
                )

    async def _run(self, action: str, node: DOMNode) -> None:
        await self.app.run_action(action, node)
