"""nntui: a Textual app that trains nnlib models and shows them learning, live.

How it fits together (one direction of data, one of control):

- `cli` parses the flags and starts `app.NNTui`, which owns the screen stack:
  `screens.setup` (pick dataset, architecture, hyperparameters), `screens.dashboard` (one run)
  on top of it, `screens.modals` (dialogs, help, "terminal too small") over either.
- The dashboard trains in a worker thread. `bridge.Bridge`, an nnlib callback on that thread,
  turns hooks and events into frozen snapshots and queues them for the dashboard (waking it
  with `messages.RunUpdate` for those shown at once); the UI thread folds them into a
  `runstate.RunState`, and the `widgets` panels draw from it with
  `plot`'s numpy-rasterised charts. No widget ever sees a live array.
- Keys act on the trainer only through its thread-safe control calls (pause, step, stop, set).
- `replay` reads a run directory (`nntui --open`) into the same snapshots, with the bridge's
  own snapshot-building functions; the dashboard shows it, tailing the log in a thread worker
  until its end event.

`bridge`, `replay`, `runstate`, `plot` and `architectures` import no Textual: they are tested
(and usable) without a terminal.
"""
