"""The interactive console (Textual). A view over the headless core; no training here."""
