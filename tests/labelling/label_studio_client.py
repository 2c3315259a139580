"""The Label Studio side of the round trip, run by Label Studio's own Python (its venv holds
label-studio-sdk, whose pins our environment cannot take): create the NER project, import
the tasks with their predictions, annotate every task as an annotator would, export.

    python label_studio_client.py URL TOKEN TASKS.json CONFIG.xml ANSWERS.json EXPORT.json

ANSWERS maps each task's text to {"cancel": bool, "spans": [[start, end, label], ...]}.
Prints a JSON summary of what Label Studio held before the export.
"""

import json
import sys
from pathlib import Path

from label_studio_sdk import LabelStudio


def main() -> None:
    url, token, tasks_path, config_path, answers_path, export_path = sys.argv[1:]
    client = LabelStudio(base_url=url, api_key=token)
    project = client.projects.create(
        title="bert_ner round trip", label_config=Path(config_path).read_text()
    )
    client.projects.import_tasks(id=project.id, request=json.loads(Path(tasks_path).read_text()))
    answers = json.loads(Path(answers_path).read_text())
    tasks = list(client.tasks.list(project=project.id, fields="all"))
    predictions = 0
    for task in tasks:
        text = task.data["text"]
        predictions += len(task.predictions or [])
        answer = answers[text]
        result = [
            {"from_name": "label", "to_name": "text", "type": "labels",
             "value": {"start": s, "end": e, "text": text[s:e], "labels": [label]}}
            for s, e, label in answer["spans"]
        ]  # fmt: skip
        client.annotations.create(
            id=task.id, project=project.id, result=result, was_cancelled=answer["cancel"]
        )
    with open(export_path, "wb") as out:
        for chunk in client.projects.exports.download_sync(
            project.id, export_type="JSON", download_all_tasks=True
        ):
            out.write(chunk)
    print(json.dumps({"project": project.id, "tasks": len(tasks), "predictions": predictions}))


if __name__ == "__main__":
    main()
