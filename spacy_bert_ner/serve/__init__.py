"""`serve`: a trained pipeline as an HTTP service on Ray Serve, batching across requests.

`settings` holds what the command line sets (light, for the CLI); `schemas` the request and
response bodies; `app` the FastAPI ingress and the Ray Serve deployment (dynamic batching,
limits, API key, the demo page `demo.html`); `command` starts Ray and the application and
stops them on Ctrl-C or SIGTERM. Only `serve` imports Ray Serve and FastAPI (the `serve` extra).
"""
