"""What a training run shows while it runs: a rich progress bar on a terminal (loss, accuracy,
images/s, ETA), plain lines otherwise (a log, a pipe, CI), on standard error.

Plain lines come at every evaluation and, between evaluations, at most every 30 seconds."""
from __future__ import annotations

import sys
import time

PLAIN_EVERY_S = 30.0


class Progress:
    def __init__(self, total: int, done: int, *, quiet: bool = False, title: str = "train", stream=None):
        self.total, self.quiet, self.title = total, quiet, title
        self.stream = stream or sys.stderr
        self.bar = None
        self.last_line = time.monotonic()
        if not quiet and getattr(self.stream, "isatty", lambda: False)():
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)
            self.bar = Bar(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("loss {task.fields[loss]}  acc {task.fields[acc]}  {task.fields[rate]} img/s"),
                           TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                           console=Console(file=self.stream), transient=False)
            self.task = self.bar.add_task(title, total=total, completed=done, loss="-", acc="-", rate="-")

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False

    def update(self, state: dict, rate: float) -> None:
        seen = max(state["seen"], 1)
        loss, acc = state["loss_sum"] / seen, state["correct"] / seen
        if self.bar is not None:
            self.bar.update(self.task, completed=state["step"], loss=f"{loss:.4f}", acc=f"{acc:.3f}",
                            rate=f"{rate:,.0f}")
        elif not self.quiet and time.monotonic() - self.last_line >= PLAIN_EVERY_S:
            self._line(f"{self.title}: step {state['step']}/{self.total}  train_loss {loss:.4f}  "
                       f"train_acc {acc:.3f}  {rate:,.0f} img/s")

    def evaluated(self, row: dict, total: int) -> None:
        line = (f"{self.title}: epoch {row['epoch']:g}  step {row['step']}/{total}  train_loss {row['train_loss']:.4f}  "
                f"val_loss {row['val_loss']:.4f}  val_acc {row['val_acc']:.4f}  {row['images_per_s']:,.0f} img/s")
        if self.bar is not None:
            self.bar.console.print(line, highlight=False, markup=False)
        elif not self.quiet:
            self._line(line)

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
        self.last_line = time.monotonic()
