"""The textual application of `edgecell watch` (the optional `console` extra).

textual, not bare rich: the console needs focus, scrolling, key bindings per table and text
input for the tag filter, which rich's Live leaves to the caller; and textual drives an app
headless (its pilot) for the tests, and exports the screen as SVG for the README.

The screen is redrawn at RENDER_HZ from `CellState`, whatever the message rate: a table is
refilled only when its part's version moved, and the tag list (up to hundreds of thousands of
tags) is a line-API widget that renders only the rows on screen.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.cells import set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Input, Static, TabbedContent, TabPane

from controller.watch.link import BrokerSettings, WatchLink
from controller.watch.state import AlarmRow, CellState, Versions
from controller.watch.text import age, clock, number, safe, size, value

RENDER_HZ = 4
DEVICE_COLUMNS = (
    "device",
    "state",
    "since",
    "latency",
    "polls",
    "failures",
    "reconnects",
    "last error",
)
RULE_COLUMNS = ("rule", "kind", "mode", "active", "doing", "outputs")
ALARM_COLUMNS = ("alarm", "state", "raised", "acknowledged", "message")
WRITE_COLUMNS = ("time", "source", "tag", "old", "new", "outcome", "why")
CONFIRM_S = 5.0  # a rule's mode is set by pressing its key twice within this
QUALITY_STYLE = {"good": "green", "uncertain": "yellow", "bad": "bold red"}
DEVICE_STYLE = {"connected": "green", "connecting": "yellow", "stopped": "dim"}
MODE_STYLE = {"auto": "green", "shadow": "cyan", "off": "dim"}
ALARM_STYLE = {"active": "bold red", "acknowledged": "yellow", "cleared": "dim"}
OUTCOME_STYLE = {"written": "green", "shadow": "cyan", "deferred": "yellow"}
FAILED_OUTCOMES = frozenset({"refused", "failed", "verify_failed"})


def styled(text: str, style: str = "") -> Text:
    """Plain text, never markup: names and messages come from the network."""
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


@dataclass
class RenderStats:
    """How long redraws take: `tick_ms` our own work, `paint_ms` until textual has painted the
    frame (bench/watch.py reads them)."""

    tick_ms: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))
    paint_ms: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))


class TagView(ScrollView, can_focus=True):
    """The tags matching the filter, one line each; only the visible lines are rendered."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("b", "only_not_good", "not good only"),
    ]
    NAME_WIDTH = 44

    def __init__(self, state: CellState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.keys: list[str] = []
        self.search = ""
        self.only_not_good = False
        self._sorted: list[str] = []
        self._sorted_version = -1
        self._base = Style()
        self._styles: dict[str, Style] = {}
        self._unknown = self._dim = Style()

    def refilter(self) -> None:
        state = self.state
        if self._sorted_version != state.versions.tag_names:
            self._sorted = sorted(state.tags)
            self._sorted_version = state.versions.tag_names
        needle = self.search.casefold()
        keys = [k for k in self._sorted if needle in k.casefold()] if needle else self._sorted
        if self.only_not_good:
            tags = state.tags
            keys = [k for k in keys if tags[k].quality != "good"]
        self.keys = keys
        self.virtual_size = Size(self.NAME_WIDTH + 60, len(keys))

    def action_only_not_good(self) -> None:
        self.only_not_good = not self.only_not_good
        self.refilter()
        self.refresh()

    def new_frame(self) -> None:
        """Styles looked up once per frame, not once per line (the widget's style walks its
        ancestors)."""
        base = self.rich_style
        self._base = base
        self._styles = {q: base + Style.parse(style) for q, style in QUALITY_STYLE.items()}
        self._unknown = base + Style.parse("magenta")
        self._dim = base + Style(dim=True)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = y + scroll_y
        width = self.size.width
        base = self._base
        if index >= len(self.keys):
            return Strip.blank(width, base)
        key = self.keys[index]
        sample = self.state.tags.get(key)
        segments = [Segment(set_cell_size(safe(key, 200), self.NAME_WIDTH) + " ", base)]
        if sample is not None:
            quality = sample.quality
            segments += [
                Segment(value(sample.value, 18).rjust(18)[:18] + "  ", base),
                Segment(set_cell_size(quality, 10), self._styles.get(quality, self._unknown)),
                Segment(age(sample.ts).rjust(7) + "  ", base),
                Segment(safe(sample.reason, 80), self._dim),
            ]
        strip = Strip(segments)
        return strip.crop(scroll_x, scroll_x + width).adjust_cell_length(width, base)


class RulesTable(DataTable[Text]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "mode('auto')", "auto"),
        Binding("s", "mode('shadow')", "shadow"),
        Binding("o", "mode('off')", "off"),
    ]

    def action_mode(self, mode: str) -> None:
        if self.row_count:
            row = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
            if row is not None:
                self.app.call_later(_app(self).set_mode, row, mode)


class AlarmsTable(DataTable[Text]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "acknowledge", "acknowledge"),
    ]

    def action_acknowledge(self) -> None:
        if self.row_count:
            row = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
            if row is not None:
                self.app.call_later(_app(self).acknowledge, row)


def _app(widget: DataTable[Text]) -> WatchApp:
    app = widget.app
    assert isinstance(app, WatchApp)
    return app


class WatchApp(App[None]):
    """`edgecell watch`: one gateway's devices, tags, rules, alarms, writes, health, plan."""

    TITLE = "edgecell watch"
    CSS = """
    #summary { height: 3; padding: 0 1; background: $boost; }
    #answer { height: 1; padding: 0 1; background: $boost; }
    TabbedContent { height: 1fr; }
    TabbedContent > ContentSwitcher { height: 1fr; }
    TabPane { height: 1fr; padding: 0; }
    #tag-filter { height: 3; }
    #tag-head { height: 1; text-style: bold; }
    TagView { height: 1fr; }
    DataTable { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        Binding("1", "show('devices')", "devices"),
        Binding("2", "show('tags')", "tags"),
        Binding("3", "show('rules')", "rules"),
        Binding("4", "show('alarms')", "alarms"),
        Binding("5", "show('writes')", "writes"),
        Binding("6", "show('plan')", "plan"),
        Binding("/", "search", "search tags"),
        Binding("escape", "leave_search", show=False),
    ]

    def __init__(self, settings: BrokerSettings, *, gateway: str, broker_label: str) -> None:
        super().__init__()
        self.settings = settings
        self.gateway = gateway
        self.broker_label = broker_label
        self.state = CellState(settings.base)
        self.link = WatchLink(settings, self.state)
        self.stats = RenderStats()
        self._drawn = Versions()
        self._drawn.devices = self._drawn.rules = self._drawn.alarms = -1
        self._drawn.writes = self._drawn.plan = self._drawn.answers = -1
        self._filter_version = (-1, "", False)
        self._armed: tuple[str, str, float] | None = None
        # Kept here, not looked up: a query goes to the active screen, which is another one
        # while the command palette is open, and the redraw goes on meanwhile.
        self.header_view = Static(id="summary")
        self.tab_view = TabbedContent(initial="devices")
        self.devices_view = DataTable[Text](
            id="devices-table", cursor_type="row", zebra_stripes=True
        )
        self.tag_filter = Input(placeholder="filter: part of device.tag", id="tag-filter")
        self.tag_head = Static(id="tag-head")
        self.tag_view = TagView(self.state, id="tag-view")
        self.rules_view = RulesTable(id="rules-table", cursor_type="row", zebra_stripes=True)
        self.alarms_view = AlarmsTable(id="alarms-table", cursor_type="row", zebra_stripes=True)
        self.writes_view = DataTable[Text](id="writes-table", cursor_type="row", zebra_stripes=True)
        self.plan_view = Static(id="plan-view")
        self.answer_view = Static(id="answer")

    # --- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield self.header_view
        with self.tab_view:
            with TabPane("Devices", id="devices"):
                yield self.devices_view
            with TabPane("Tags", id="tags"):
                yield self.tag_filter
                yield self.tag_head
                yield self.tag_view
            with TabPane("Rules", id="rules"):
                yield self.rules_view
            with TabPane("Alarms", id="alarms"):
                yield self.alarms_view
            with TabPane("Writes", id="writes"):
                yield self.writes_view
            with TabPane("Plan", id="plan"):
                yield self.plan_view
        yield self.answer_view
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"{self.gateway} on {self.broker_label}"
        self.tag_head.update(
            styled(
                f"{'tag'.ljust(TagView.NAME_WIDTH)} {'value'.rjust(18)}  {'quality':10}"
                f"{'age'.rjust(7)}  reason"
            )
        )
        self.run_worker(self.link.run(), name="mqtt", exclusive=True)
        self.set_interval(1 / RENDER_HZ, self.redraw)
        self.redraw()

    # --- actions ---------------------------------------------------------------------------

    def action_show(self, tab: str) -> None:
        self.tab_view.active = tab
        target: dict[str, Widget] = {
            "tags": self.tag_view,
            "rules": self.rules_view,
            "alarms": self.alarms_view,
            "devices": self.devices_view,
            "writes": self.writes_view,
        }
        if tab in target:
            target[tab].focus()

    def action_search(self) -> None:
        self.tab_view.active = "tags"
        self.tag_filter.focus()

    def action_leave_search(self) -> None:
        if self.tab_view.active == "tags":
            self.tag_view.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.tag_view.search = event.value
        self._redraw_tags()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.tag_view.focus()

    async def set_mode(self, rule: str, mode: str) -> None:
        """Pressed once: armed, and the answer line says to press again; twice within
        CONFIRM_S: `cmd/rules/{rule}/mode` is sent."""
        now = time.monotonic()
        armed, self._armed = self._armed, None
        if armed is None or armed[:2] != (rule, mode) or now - armed[2] > CONFIRM_S:
            self._armed = (rule, mode, now)
            self._say(f"press the key again within {CONFIRM_S:g} s to set {rule} to {mode}")
            return
        await self.link.command(f"rules/{rule}/mode", {"mode": mode})

    async def acknowledge(self, alarm: str) -> None:
        await self.link.command("alarms/ack", {"alarm": alarm})

    def _say(self, text: str) -> None:
        self.answer_view.update(styled(text, "bold"), layout=False)

    # --- drawing ---------------------------------------------------------------------------

    def redraw(self) -> None:
        """One frame: every part whose version moved, the header and the visible tags."""
        try:
            self._redraw()
        except NoMatches:
            # The widgets are held by reference; only the tabs' own parts are looked up
            # (`get_tab`), and they are gone only while the app closes under a firing timer.
            return

    def _redraw(self) -> None:
        started = time.perf_counter()
        state, drawn = self.state, self._drawn
        versions = state.versions
        self.link.expire()
        self.header_view.update(self._summary(), layout=False)
        if versions.devices != drawn.devices:
            drawn.devices = versions.devices
            self._fill(self.devices_view, DEVICE_COLUMNS, self._device_rows())
        if versions.rules != drawn.rules:
            drawn.rules = versions.rules
            self._fill(self.rules_view, RULE_COLUMNS, self._rule_rows())
        if versions.alarms != drawn.alarms:
            drawn.alarms = versions.alarms
            self._fill(self.alarms_view, ALARM_COLUMNS, self._alarm_rows())
        if versions.writes != drawn.writes:
            drawn.writes = versions.writes
            self._fill(self.writes_view, WRITE_COLUMNS, self._write_rows())
        if versions.plan != drawn.plan:
            drawn.plan = versions.plan
            self.plan_view.update(self._plan())
        if versions.answers != drawn.answers:
            drawn.answers = versions.answers
            self._show_answer()
        self._redraw_tags()
        self._label_tabs()
        self.stats.tick_ms.append((time.perf_counter() - started) * 1000)
        self.call_after_refresh(
            lambda: self.stats.paint_ms.append((time.perf_counter() - started) * 1000)
        )

    def _redraw_tags(self) -> None:
        view = self.tag_view
        key = (self.state.versions.tag_names, view.search, view.only_not_good)
        if key != self._filter_version or view.only_not_good:
            self._filter_version = key
            view.refilter()
        view.new_frame()

    @staticmethod
    def _fill(
        table: DataTable[Text], columns: tuple[str, ...], rows: Iterable[tuple[str, list[Text]]]
    ) -> None:
        """Show `rows` in `table`. The same rows as shown (a device's new status): the cells
        that changed are updated in place. Other rows: the table is made again, columns too,
        so that their widths fit what they hold now, and the cursor stays on the row (by key)
        it was on when that row is still there."""
        rows = list(rows)
        shown = [key.value for key in table.rows]
        if table.columns and shown == [key for key, _ in rows]:
            for key, cells in rows:
                for column, cell in zip(columns, cells, strict=True):
                    held = table.get_cell(key, column)
                    if (held.plain, held.style, held.spans) != (cell.plain, cell.style, cell.spans):
                        table.update_cell(key, column, cell, update_width=True)
            return
        current = None
        if table.row_count:
            current = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        table.clear(columns=True)
        for column in columns:
            table.add_column(column, key=column)
        for key, cells in rows:
            table.add_row(*cells, key=key)
        if current is not None and current in table.rows:
            table.move_cursor(row=table.get_row_index(current), animate=False)

    def _label_tabs(self) -> None:
        tabs = self.tab_view
        state = self.state
        unacked = sum(1 for a in state.alarms.values() if a.state == "active")
        labels = {
            "devices": f"Devices {len(state.devices)}",
            "tags": f"Tags {len(state.tags)}",
            "rules": f"Rules {len(state.rules)}",
            "alarms": f"Alarms {unacked}" if unacked else "Alarms",
            "writes": "Writes",
            "plan": "Plan" if state.plan else "Plan -",
        }
        for pane, label in labels.items():
            tab = tabs.get_tab(pane)
            if tab.label_text != label:
                tab.label = label

    # --- rows ------------------------------------------------------------------------------

    def _summary(self) -> Text:
        state = self.state
        gateway = state.gateway
        health = state.health
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"gateway {safe(self.gateway, 60)}  ", "bold")
        online = gateway.get("state")
        if online == "online":
            text.append("online", "bold green")
            version = gateway.get("version")
            started = gateway.get("started")
            if isinstance(version, str):
                text.append(f"  edgecell {safe(version, 20)}")
            if isinstance(started, int) and not isinstance(started, bool):
                text.append(f"  started {clock(started)}")
        elif online == "offline":
            text.append("OFFLINE", "bold red")
            text.append(" (clean stop)" if gateway.get("clean") is True else " (connection lost)")
        else:
            text.append("no status yet", "yellow")
        text.append("   broker ")
        text.append(
            f"{safe(self.broker_label, 60)} {state.broker}",
            "green" if state.broker == "connected" else "bold red",
        )
        text.append("\n")
        devices = state.devices
        connected = sum(1 for d in devices.values() if d.state == "connected")
        text.append(
            f"devices {connected}/{len(devices)} connected",
            "green" if connected == len(devices) else "bold red",
        )
        text.append("   ")
        self._health(text, health)
        text.append("\n")
        active = [a for a in state.alarms.values() if a.state in ("active", "acknowledged")]
        unacked = sum(1 for a in active if a.state == "active")
        text.append(
            f"alarms {len(active)} ({unacked} not acknowledged)",
            "bold red" if unacked else ("yellow" if active else "green"),
        )
        modes = [r.mode for r in state.rules.values()]
        text.append(
            f"   rules {len(modes)}: {modes.count('auto')} auto, {modes.count('shadow')} "
            f"shadow, {modes.count('off')} off"
        )
        text.append(f"   tags {len(state.tags)}")
        if state.ignored.count:
            text.append(
                f"   ignored {state.ignored.count} messages (last: {state.ignored.last})",
                "yellow",
            )
        return text

    def _health(self, text: Text, health: dict[str, Any]) -> None:
        if not health or self.state.health_received is None:
            text.append("no health yet", "yellow")
            return
        mqtt = health.get("mqtt") if isinstance(health.get("mqtt"), dict) else {}
        assert isinstance(mqtt, dict)

        def figure(obj: dict[str, Any], key: str) -> float | None:
            found = obj.get(key)
            if isinstance(found, int | float) and not isinstance(found, bool):
                return float(found)
            return None

        depth = figure(mqtt, "buffer_depth")
        used = figure(mqtt, "buffer_bytes")
        dropped = figure(mqtt, "buffer_dropped")
        oldest = figure(mqtt, "buffer_oldest_age_s")
        disk_ok = mqtt.get("buffer_disk_ok")
        storage = mqtt.get("buffer_storage")
        healthy = depth == 0 and not dropped and disk_ok is True
        text.append(
            f"buffer {'?' if depth is None else f'{depth:.0f}'} msgs"
            f" {'?' if used is None else size(used)}"
            + (f", oldest {oldest:.0f}s" if oldest is not None else "")
            + f", dropped {'?' if dropped is None else f'{dropped:.0f}'}"
            + f", disk {'ok' if disk_ok is True else 'NOT OK'}"
            + (f" ({safe(storage, 10)})" if isinstance(storage, str) else ""),
            "green" if healthy else "bold red" if dropped or disk_ok is not True else "yellow",
        )
        lag = figure(health, "loop_lag_ms")
        rss = figure(health, "rss_bytes")
        if lag is not None:
            text.append(f"   loop lag {number(lag)} ms", "bold red" if lag > 500 else "")
        if rss is not None:
            text.append(f"   rss {size(rss)}")
        seconds = time.monotonic() - self.state.health_received
        text.append(f"   health {seconds:.0f}s ago", "bold red" if seconds > 60 else "dim")

    def _device_rows(self) -> Iterable[tuple[str, list[Text]]]:
        for name in sorted(self.state.devices):
            row = self.state.devices[name]
            yield (
                name,
                [
                    styled(safe(name, 60), "bold"),
                    styled(row.state, DEVICE_STYLE.get(row.state, "bold red")),
                    styled(clock(row.since)),
                    styled("-" if row.latency_ms is None else f"{number(row.latency_ms)} ms"),
                    styled(_count(row.polls)),
                    styled(_count(row.failures), "bold red" if row.failures else ""),
                    styled(_count(row.reconnects)),
                    styled(row.last_error, "red"),
                ],
            )

    def _rule_rows(self) -> Iterable[tuple[str, list[Text]]]:
        for name in sorted(self.state.rules):
            row = self.state.rules[name]
            if row.inputs_ok is False:
                active = ("stopped", "bold red")
            elif row.active is None:
                active = ("?", "yellow")
            else:
                active = ("acting", "green") if row.active else ("idle", "dim")
            outputs = "; ".join(
                f"{tag}={proposed}" + (f" ({outcome})" if outcome else "")
                for tag, proposed, outcome in row.outputs
            )
            yield (
                name,
                [
                    styled(safe(name, 60), "bold"),
                    styled(row.kind),
                    styled(row.mode, MODE_STYLE.get(row.mode, "bold red")),
                    styled(*active),
                    styled(row.reason),
                    styled(outputs),
                ],
            )

    def _alarm_rows(self) -> Iterable[tuple[str, list[Text]]]:
        order = {"active": 0, "acknowledged": 1}

        def rank(item: tuple[str, AlarmRow]) -> tuple[int, int]:
            return order.get(item[1].state, 2), -(item[1].first or 0)

        for name, row in sorted(self.state.alarms.items(), key=rank):
            acked = f"by {row.acked_by}" if row.acknowledged else "no"
            yield (
                name,
                [
                    styled(safe(name, 60), "bold"),
                    styled(row.state, ALARM_STYLE.get(row.state, "magenta")),
                    styled(clock(row.first)),
                    styled(acked, "" if row.acknowledged else "bold"),
                    styled(row.message),
                ],
            )

    def _write_rows(self) -> Iterable[tuple[str, list[Text]]]:
        for index, row in enumerate(self.state.writes):
            style = (
                "bold red" if row.outcome in FAILED_OUTCOMES else OUTCOME_STYLE.get(row.outcome, "")
            )
            yield (
                str(index),
                [
                    styled(clock(row.ts)),
                    styled(row.source),
                    styled(row.tag),
                    styled(value(row.old, 16)),
                    styled(value(row.new, 16)),
                    styled(row.outcome, style),
                    styled(row.why, "dim"),
                ],
            )

    def _plan(self) -> Table | Text:
        plan = self.state.plan
        if not plan:
            return Text(
                "No plan on "
                f"{safe(self.state.base, 80)}/plan. The scheduler publishes its plan there, "
                "retained, when it runs; it shows here as soon as it does."
            )
        table = Table(title="plan", expand=True, show_lines=False)
        steps = plan.get("steps")
        summary = ", ".join(
            f"{safe(str(k), 30)}: {value(v, 30)}"
            for k, v in list(plan.items())[:12]
            if k != "steps"
        )
        table.caption = Text(safe(summary, 400))  # Text, never markup: it came from MQTT
        rows = [s for s in steps[:96] if isinstance(s, dict)] if isinstance(steps, list) else []
        columns = [safe(str(k), 20) for k in list(rows[0])[:10]] if rows else ["(no steps)"]
        for column in columns:
            table.add_column(Text(column), no_wrap=True)
        for step in rows:
            table.add_row(*(Text(value(step.get(c), 20)) for c in columns))
        return table

    def _show_answer(self) -> None:
        if not self.state.answers:
            self._say("")
            return
        answer = self.state.answers[0]
        style = "yellow" if answer.ok is None else "bold green" if answer.ok else "bold red"
        self.answer_view.update(
            styled(f"{safe(answer.command, 80)}: {answer.text}", style), layout=False
        )


def _count(number_: int | None) -> str:
    return "?" if number_ is None else f"{number_:,}"
