"""nntui: a Textual app that trains nnlib models and shows them learning, live.

How it fits together (one direction of data, one of control):

- `cli` parses the flags and starts `app.NNTui`, which owns the screen stack:
  `screens.setup` (pick dataset, architecture, hyperparameters), `screens.dashboard` (one run)
  on top of it, `screens.modals` (dialogs, help, "terminal too small") over either.
- The dashboard trains in a worker thread. The nnlib CallbackList makes each record of the
  run once (`nnlib.events`: batches, epochs, histograms, the end...) and hands it to every
  callback; `bridge.Bridge`, one of them, forwards those records (`stream`) to the dashboard's
  inbox (waking it with `messages.RunUpdate` for those shown at once); the UI thread folds
  them into a `runstate.RunState`, and the `widgets` panels draw from it with `plot`'s
  numpy-rasterised charts. No widget ever sees a live array.
- Every request (keys, dialogs, fork, save, a view on demand) goes through the run source
  (`sources`): the trainer's thread-safe control calls for a run trained here, the run's
  command file for one written by another process.
- `replay` reads a run directory (`nntui --open`) as the same stream of records, from its
  log; the dashboard folds it as it folds a live run, tailing the log in a thread worker.

`bridge`, `stream`, `replay`, `runstate`, `history`, `sources`, `plot` and `architectures`
import no Textual: they are tested (and usable) without a terminal.
"""
