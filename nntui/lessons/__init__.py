"""Lessons: tutorials to follow in the app, each a few steps over a normal run (see `model` for
the data, `checks` for the tasks, `progress` for where the learner is, `source` for the code
shown beside a formula). The screens are in nntui.screens.lessons.

The app's own words around the lessons (this module's UI) are in every language of LANGS too;
the language comes from `--lang`, else the locale.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .model import LANGS, Lesson, LessonError, Texts, load, load_all

__all__ = ["LANGS", "UI", "Lesson", "LessonError", "Texts", "lang_from_env", "load", "load_all"]


def lang_from_env(environ: Mapping[str, str] = os.environ) -> str:
    """ "zh" when the locale's language is Chinese, else "en": the first of LC_ALL,
    LC_MESSAGES and LANG that is set decides, as for any program's messages (POSIX)."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name)
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def _ui(**texts: tuple[str, str]) -> dict[str, Texts]:
    return {key: Texts(dict(zip(LANGS, pair, strict=True))) for key, pair in texts.items()}


#: The lesson screens' own words ({} fields filled in by the screens).
UI = _ui(
    menu_title=("Lessons: neural networks from the inside", "课程：从内部看神经网络"),
    menu_help=(
        "Enter: open (you come back to the step you left)  Esc: back",
        "Enter：打开（回到上次离开的那一步）  Esc：返回",
    ),
    step=("step {n} of {total}", "第 {n} 步，共 {total} 步"),
    done=("done", "已完成"),
    look=("Look at", "看这里"),
    task=("Task", "任务"),
    task_done=("✓ done", "✓ 已完成"),
    task_open=("not done yet", "尚未完成"),
    no_task=("no task in this step: read, then → for the next", "这一步没有任务：读完后按 → 继续"),
    keys=(
        "Enter: try it on the run  → ←: next, previous step  ↑↓ PgDn: scroll  Esc: leave",
        "Enter：在训练中试一试  → ←：下一步、上一步  ↑↓ PgDn：滚动  Esc：离开",
    ),
    bar_keys=("L: the lesson text", "L：回到课程说明"),
    finished=(
        "Task done. L: back to the lesson, then → for the next step",
        "任务完成。按 L 回到课程说明，再按 → 进入下一步",
    ),
    last_step=("This was the last step of the lesson.", "这是本课的最后一步。"),
    hint=("Keys", "按键"),
    code=("The code (nnlib's own, read with inspect)", "代码（nnlib 自己的源码，用 inspect 读取）"),
    new_run=(
        "a new run of the lesson's experiment: {run}",
        "开始了本课实验的新一次训练：{run}",
    ),
    left=(
        "left the lesson at step {n}; its run stopped, its log is kept",
        "已离开课程（停在第 {n} 步）；训练已停止，日志保留",
    ),
    start_over=("Lesson progress", "课程进度"),
)
