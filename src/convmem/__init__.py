"""convmem: a self-hostable Conversation Memory server (Twilio Memory API v1)."""

__version__ = "0.1.0"
