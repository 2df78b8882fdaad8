"""``JobsPage``: the scheduled jobs, their recent runs and reports, and a run-now button each.

The schedules table lists every job notebook (``notebooks/jobs/`` and ``notebooks/reports/``)
with its cron schedule from ``schedule.toml``, its parameters and when it is due next (UTC).
The runs table is the registry's history, newest first. Selecting a run shows where its
report is, offers the report and the executed notebook as downloads (the report is one
HTML file with BokehJS inlined: it opens offline, charts included), and previews the
report's text and tables on the page (its scripts are left out, so its charts are not
drawn there). When the server also serves the reports folder as static files (see
:func:`reports_static_dir`), give ``report_url`` and each run gets a link that opens its
report in a new tab.

*Run now* runs a job in a worker thread, so the page keeps serving while the notebook
runs, with the job's scheduled parameters and any overrides typed in (``key=value``, one
per line). A job already running (from this page, the scheduler or a terminal) is refused
by the registry's lock, and the page says so.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import panel as pn
import param

from workbench.config import Settings, load_settings
from workbench.errors import ConfigError, WorkbenchError
from workbench.jobs import JobRegistry, JobRun, run_job
from workbench.jobs.notebooks import find_jobs
from workbench.jobs.schedule import SCHEDULE, ScheduledJob, load_schedule, next_run_times

log = logging.getLogger(__name__)

SCHEDULE_COLUMNS = [
    "job",
    "cron",
    "next run (UTC)",
    "parameters",
    "timeout",
    "last run",
    "notebook",
]
RUN_COLUMNS = [
    "id", "job", "status", "started (UTC)", "took", "parameters", "error", "report", "link",
]  # fmt: skip
#: Characters of a report's body previewed on the page (the rest is in the download).
PREVIEW_LIMIT = 400_000
_SCRIPT = re.compile(r"<script\b.*?</script\s*>", re.IGNORECASE | re.DOTALL)
_STYLE = re.compile(r"<style\b.*?</style\s*>", re.IGNORECASE | re.DOTALL)
_BODY = re.compile(r"<body\b[^>]*>(.*)</body\s*>", re.IGNORECASE | re.DOTALL)


def reports_static_dir(settings: Settings | None = None) -> dict[str, str]:
    """``{"reports": <data_dir>/reports}``: for ``pn.serve(static_dirs=...)``, so that the
    page's ``report_url="/reports"`` links open the reports."""
    settings = settings or load_settings()
    return {"reports": str((Path(settings.data_dir) / "reports").resolve())}


class JobsPage(pn.viewable.Viewer):
    """Schedules with their next due times, recent runs with their status and reports, and a
    run-now button per job. ``refresh()`` re-reads the schedule and the registry;
    ``run_now(job)`` is what a button calls."""

    settings = param.ClassSelector(
        class_=Settings, constant=True, doc="Whose store holds the runs and where jobs run."
    )
    schedules = param.DataFrame(doc="One row per job: its schedule, next run and last run.")
    runs = param.DataFrame(doc="The newest runs, newest first.")
    selected = param.Integer(
        default=None, allow_None=True, doc="Row of `runs` whose report is shown."
    )
    overrides = param.String(
        default="", doc="Parameters for Run now, key=value, one per line (over the schedule's)."
    )
    limit = param.Integer(default=50, bounds=(1, 1000), doc="How many of the newest runs to list.")
    report_url = param.String(
        default=None, allow_None=True,
        doc="Where the server serves data_dir/reports (e.g. '/reports'); None: no links.",
    )  # fmt: skip
    running = param.List(default=[], item_type=str, doc="Jobs this page is running now.")
    message = param.String(default="", doc="The outcome of the last action.")
    alert_type = param.Selector(default="info", objects=["info", "success", "warning", "danger"])

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        schedule: Path | None = None,
        notebooks: Path | None = None,
        clock: Callable[[], datetime] | None = None,
        **params: Any,
    ) -> None:
        super().__init__(settings=settings or load_settings(), **params)
        self._schedule_path = schedule or (
            notebooks / "jobs" / "schedule.toml" if notebooks else SCHEDULE
        )
        self._notebooks = notebooks
        self._clock = clock or (lambda: datetime.now(UTC))
        self._registry = JobRegistry(self.settings.store_url)
        self._jobs: dict[str, Path] = {}
        self._scheduled: dict[str, ScheduledJob] = {}
        self._schedule_error = ""
        self._buttons: dict[str, pn.widgets.Button] = {}
        self._button_row = pn.Row(sizing_mode="stretch_width")
        self._schedule_table = pn.widgets.Tabulator(
            self.param.schedules, show_index=False, disabled=True, selectable=False,
            sizing_mode="stretch_width", layout="fit_data_stretch", hidden_columns=["notebook"],
        )  # fmt: skip
        self._runs_table = pn.widgets.Tabulator(
            self.param.runs, show_index=False, disabled=True, selectable=1,
            sizing_mode="stretch_width", layout="fit_data_stretch", pagination="local",
            page_size=15, hidden_columns=["notebook"] + ([] if self.report_url else ["link"]),
            formatters={"link": {"type": "link", "label": "open", "target": "_blank"}},
        )  # fmt: skip
        self._runs_table.param.watch(self._on_select, "selection")
        self._html_download = pn.widgets.FileDownload(
            label="Download the report (HTML)", color="primary", disabled=True,
            embed=False, callback=lambda: None,
        )  # fmt: skip
        self._notebook_download = pn.widgets.FileDownload(
            label="Download the executed notebook", disabled=True, embed=False,
            callback=lambda: None,
        )  # fmt: skip
        self._report_head = pn.pane.Markdown("Select a run to see its report.")
        self._preview = pn.pane.HTML("", sizing_mode="stretch_width", min_height=200)
        self._previewed: Path | None = None
        self._periodic: Any = None
        self.refresh()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **params: Any) -> JobsPage:
        """Over the project's job notebooks and schedule and the settings' store."""
        return cls(settings or load_settings(), **params)

    # -- what the buttons call ---------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the jobs, the schedule and the newest runs, keeping the selected run."""
        selected_id = self._selected_id()
        self._jobs = find_jobs(self._notebooks)
        self._scheduled, self._schedule_error = {}, ""
        if self._schedule_path.exists():
            try:
                self._scheduled = load_schedule(self._schedule_path, notebooks=self._notebooks)
            except ConfigError as exc:
                self._schedule_error = str(exc)
        runs = self._registry.runs(limit=self.limit)
        frame = _runs_frame(runs, self.settings, self.report_url)
        ids = list(frame["id"])
        self.param.update(
            schedules=self._schedules_frame(runs),
            runs=frame,
            selected=ids.index(selected_id) if selected_id in ids else None,
        )
        self._update_buttons()
        if self._schedule_error:
            self._tell("danger", f"**The schedule cannot be used.** {self._schedule_error}")

    async def run_now(self, job: str) -> JobRun | None:
        """Run ``job`` in a worker thread with its scheduled parameters and the overrides,
        then refresh and say how it went; None (and an alert) when it was refused."""
        scheduled = self._scheduled.get(job)
        try:
            overrides = parse_overrides(self.overrides)
        except ConfigError as exc:
            self._tell("danger", f"**{job} not started.** {exc}")
            return None
        parameters = {**(scheduled.parameters if scheduled else {}), **overrides}
        timeout = scheduled.timeout if scheduled else None
        call = partial(
            run_job, job, parameters, settings=self.settings, timeout=timeout,
            notebooks=self._notebooks, coerce=True,
        )  # fmt: skip
        self.running = [*self.running, job]
        self._tell("info", f"Running **{job}**…")
        try:
            run = await asyncio.to_thread(call)
        except WorkbenchError as exc:
            self.refresh()  # the refused attempt is in the history too
            self._tell("danger", f"**{job} refused.** {exc}")
            return None
        except Exception as exc:  # a bug, not bad input: the page says so, the log has the trace
            log.exception("running %s failed", job)
            self.refresh()
            self._tell("danger", f"**{job} failed unexpectedly** ({type(exc).__name__}: {exc}).")
            return None
        finally:
            self.running = [name for name in self.running if name != job]
        self.refresh()
        self._select_run(run.id)
        if run.ok:
            self._tell("success", f"**{job}** run {run.id} succeeded; its report is shown below.")
        else:
            cell = f" in cell {run.failed_cell}" if run.failed_cell is not None else ""
            self._tell("warning", f"**{job}** run {run.id} {run.status}{cell}: {run.error}")
        return run

    def report(self, index: int | None = None) -> tuple[Path | None, Path | None]:
        """The report (HTML) and executed notebook of run row ``index`` (default: selected)."""
        index = self.selected if index is None else index
        if index is None or self.runs is None or not 0 <= index < len(self.runs):
            return None, None
        row = self.runs.iloc[index]
        return _existing(row["report"]), _existing(row["notebook"])

    def close(self) -> None:
        """Stop the periodic refresh and close the registry's connections."""
        if self._periodic is not None:
            self._periodic.stop()
            self._periodic = None
        self._registry.close()

    # -- layout ------------------------------------------------------------------------------

    def __panel__(self) -> pn.viewable.Viewable:
        if pn.state.curdoc is not None and self._periodic is None:
            # served: pick up the scheduler's runs as they happen
            self._periodic = pn.state.add_periodic_callback(self.refresh, period=15_000)
            pn.state.on_session_destroyed(lambda _: self.close())
        refresh = pn.widgets.Button(label="Refresh", align="end")
        refresh.on_click(lambda _: self.refresh())
        overrides = pn.widgets.TextAreaInput.from_param(
            self.param.overrides, name="Run-now parameters (key=value, one per line)",
            placeholder="symbols=BTC/USDT\nday=2024-03-01", height=80, width=320,
        )  # fmt: skip
        return pn.Column(
            pn.pane.Alert(
                self.param.message,
                alert_type=self.param.alert_type,
                visible=self.param.message.rx.bool(),
                sizing_mode="stretch_width",
            ),  # fmt: skip
            pn.pane.Markdown("#### Schedules (UTC)"),
            self._schedule_table,
            pn.Row(
                pn.Column("#### Run now", self._button_row),
                overrides,
                refresh,
                sizing_mode="stretch_width",
            ),  # fmt: skip
            pn.pane.Markdown("#### Recent runs"),
            self._runs_table,
            pn.Row(self._html_download, self._notebook_download),
            self._report_head,
            self._preview,
            sizing_mode="stretch_width",
        )

    @param.depends("selected", "runs", watch=True)
    def _show_report(self) -> None:
        """The selected run's heading, downloads and preview (re-read only when it changes)."""
        html_path, notebook_path = self.report()
        self._point_downloads(html_path, notebook_path)
        if html_path != self._previewed:
            self._preview.object = "" if html_path is None else preview_html(html_path)
            self._previewed = html_path
        if self.selected is None:
            self._report_head.object = "Select a run to see its report."
            return
        row = self.runs.iloc[self.selected]
        head = f"#### Run {row['id']} of {row['job']}: {row['status']}"
        if row["error"]:
            head += f"\n\n{row['error']}"
        if html_path is None:
            head += "\n\nThis run left no report."
        else:
            link = f" · [open]({row['link']})" if row["link"] else ""
            head += (
                f"\n\nReport: `{html_path}`{link}. The preview below leaves its charts out; "
                "the downloaded report has them."
            )
        self._report_head.object = head

    # -- building blocks ---------------------------------------------------------------------

    def _schedules_frame(self, runs: pd.DataFrame) -> pd.DataFrame:
        now = self._clock()
        due = next_run_times(self._scheduled, now)
        last = runs.drop_duplicates("job").set_index("job") if len(runs) else None
        rows = []
        for name, notebook in self._jobs.items():
            job = self._scheduled.get(name)
            previous = last.loc[name] if last is not None and name in last.index else None
            rows.append({
                "job": name,
                "cron": job.cron if job else "not scheduled",
                "next run (UTC)": _time(due.get(name)),
                "parameters": _params_text(job.parameters) if job else "",
                "timeout": f"{job.timeout:g} s" if job and job.timeout else "",
                "last run": (
                    f"{previous['status']} {_time(previous['started'])}" if previous is not None else ""
                ),
                "notebook": _relative(notebook),
            })  # fmt: skip
        return pd.DataFrame(rows, columns=SCHEDULE_COLUMNS)

    def _update_buttons(self) -> None:
        for name in self._jobs:
            if name not in self._buttons:
                button = pn.widgets.Button(label=name, color="primary", width=170)
                button.on_click(partial(self._on_run, name))
                self._buttons[name] = button
        for name, button in self._buttons.items():
            busy = name in self.running
            button.param.update(
                disabled=busy or name not in self._jobs,
                label=f"{name} (running…)" if busy else name,
            )
        self._button_row.objects = [self._buttons[name] for name in self._jobs]

    @param.depends("running", watch=True)
    def _on_running(self) -> None:
        self._update_buttons()

    def _point_downloads(self, html_path: Path | None, notebook_path: Path | None) -> None:
        for widget, path in (
            (self._html_download, html_path),
            (self._notebook_download, notebook_path),
        ):
            if path is None:
                widget.param.update(file=None, callback=lambda: None, disabled=True)
            else:
                widget.param.update(file=str(path), callback=None, disabled=False)
                widget.filename = _download_name(path)  # after `file`, which resets it

    def _selected_id(self) -> int | None:
        if self.selected is None or self.runs is None or self.selected >= len(self.runs):
            return None
        return int(self.runs.iloc[self.selected]["id"])

    def _select_run(self, run_id: int) -> None:
        ids = list(self.runs["id"])
        self.selected = ids.index(run_id) if run_id in ids else None

    def _on_select(self, event: param.parameterized.Event) -> None:
        self.selected = event.new[0] if event.new else None

    @param.depends("selected", watch=True)
    def _select_row(self) -> None:
        """Keeps the table's highlight in step when `selected` is set in code."""
        wanted = [] if self.selected is None else [self.selected]
        if self._runs_table.selection != wanted:
            self._runs_table.selection = wanted

    async def _on_run(self, job: str, _: object) -> None:
        await self.run_now(job)

    def _tell(self, alert_type: str, message: str) -> None:
        self.param.update(alert_type=alert_type, message=message)


def parse_overrides(text: str) -> dict[str, str]:
    """``key=value`` lines (blank lines and ``#`` comments skipped) as strings, which the
    runner converts to the job's declared types."""
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, equals, value = line.partition("=")
        if not equals or not key.strip():
            raise ConfigError(f"Line {number} ({line!r}) is not key=value.")
        found[key.strip()] = value.strip()
    return found


def preview_html(path: Path, limit: int = PREVIEW_LIMIT) -> str:
    """A report's styles and body without its scripts (BokehJS, the figures' data), to show
    its headings, text and tables on the page."""
    try:
        page = path.read_text(encoding="utf-8")
    except OSError as exc:
        return f"<p>The report cannot be read: {html.escape(str(exc))}</p>"
    match = _BODY.search(page)
    body = _SCRIPT.sub("", match.group(1) if match else page)
    if len(body) > limit:
        body = body[:limit] + "<p><i>… the preview stops here; the download has it all.</i></p>"
    # The page's variables hang on :root, which inside the pane's shadow root is its host.
    styles = "".join(_STYLE.findall(page)).replace(":root", ":host")
    return styles + body


def _runs_frame(runs: pd.DataFrame, settings: Settings, report_url: str | None) -> pd.DataFrame:
    took = (runs["ended"] - runs["started"]).map(_duration) if len(runs) else []
    reports = Path(settings.data_dir).resolve() / "reports"
    frame = pd.DataFrame(
        {
            "id": runs["id"].astype("int64"),
            "job": runs["job"],
            "status": runs["status"],
            "started (UTC)": runs["started"].map(_time),
            "took": took,
            "parameters": runs["parameters"].map(_params_text),
            "error": runs["error"].fillna(""),
            "report": runs["html"].fillna(""),
            "link": [_link(path, reports, report_url) for path in runs["html"]],
        },
        columns=RUN_COLUMNS,
    )
    frame["notebook"] = runs["notebook"].fillna("").to_numpy() if len(runs) else []
    return frame


def _link(path: str | None, reports: Path, report_url: str | None) -> str:
    if not path or not report_url:
        return ""
    try:
        relative = Path(path).resolve().relative_to(reports)
    except ValueError:
        return ""
    return f"{report_url.rstrip('/')}/{relative.as_posix()}"


def _existing(path: str | None) -> Path | None:
    return Path(path) if path and Path(path).is_file() else None


def _download_name(path: Path) -> str:
    """``daily_report-20240302T001500Z-7.html``: the job, its run folder and the suffix."""
    return f"{path.stem}-{path.parent.name}{path.suffix}"


def _params_text(parameters: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (parameters or {}).items())


def _time(value: Any) -> str:
    if value is None or pd.isna(value):
        return ""
    return pd.Timestamp(value).tz_convert("UTC").strftime("%Y-%m-%d %H:%M")


def _duration(value: Any) -> str:
    if value is None or pd.isna(value):
        return ""
    seconds = pd.Timedelta(value).total_seconds()
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
