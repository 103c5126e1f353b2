"""nntui: a Textual app that trains nnlib models and shows them learning, live."""
