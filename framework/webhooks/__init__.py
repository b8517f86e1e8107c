"""Receiving webhooks: receive → verify → parse.

- :mod:`~framework.webhooks.receiver`: the ASGI endpoint; from an HTTP request to a stored
  delivery or a refusal;
- :mod:`~framework.webhooks.signature`: signatures over the raw body, in constant time;
- :mod:`~framework.webhooks.delivery`: a verified delivery, its typed event built field by field;
- :mod:`~framework.webhooks.load`: whether the receiver is busy (handlers yield to it).
"""
