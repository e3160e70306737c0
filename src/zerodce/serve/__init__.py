"""``zerodce serve``'s library side: an HTTP service and a web page around one loaded enhancer.

Needs the ``serve`` extra (FastAPI and uvicorn): ``pip install "zerodce[serve]"``.
:func:`~zerodce.serve.app.create_app` builds the app, :class:`~zerodce.serve.limits.WorkPool`
bounds the work, and ``static/`` holds the page.
"""
