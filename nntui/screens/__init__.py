"""The app's screens: setup, dashboard, and the small modal dialogs."""
