"""`annotate`: a trained pipeline over many records, resumable, on one machine or a Ray cluster.

`command` is the entry point; `records` reads input and formats output lines, `progress`
knows what earlier runs wrote, `annotator` applies the pipeline, and `local` / `ray_engine`
schedule it.
"""
