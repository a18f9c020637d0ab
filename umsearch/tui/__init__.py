"""The terminal interface (`umsearch tui`).

Only `app` and `widgets` import Textual; `service`, `thumbs` and `viewer` are plain library code that the
tests call directly. Importing this package itself imports nothing heavy.
"""
