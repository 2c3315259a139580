"""`serve`: a trained pipeline as an HTTP service, batching across requests, on two engines.

`settings` holds what the command line sets and the defaults (light, for the CLI); `command`
picks the engine: `local` (uvicorn in one process, no Ray) or `ray_engine` (Ray Serve
replicas). Both run the app of `app` (`entities`: the one route of `POST /v1/entities`, its
body validated by `schemas`, an NDJSON body streamed by `bulk`; `gate`: API key and metrics;
the demo page `demo.html`) over an `EntityService` (`service`: the annotator core of
`annotate`, the `batcher`, the requests held). Only `serve` imports FastAPI,
uvicorn and prometheus-client (the `serve` extra), and only `ray_engine` Ray Serve.
"""
