"""The Label Studio side of the ML backend test, run by Label Studio's own Python (its venv holds
label-studio-sdk): connect our service as a project's model, ask Label Studio for its
predictions, annotate as an annotator would, wait for the backend's new version, ask again.

    python label_studio_backend_client.py URL TOKEN BACKEND KEY CONFIG.xml ANSWERS.json

ANSWERS maps each task's text to its spans, [[start, end, label], ...]. Prints a JSON summary:
the predictions Label Studio held before and after the update, the versions, and what Label
Studio said when a project whose labels the pipeline does not predict was connected.
"""

import base64
import json
import sys
import time
import urllib.request
from pathlib import Path

from label_studio_sdk import LabelStudio


def backend_version(backend: str, key: str) -> str:
    request = urllib.request.Request(f"{backend}/health")
    basic = base64.b64encode(f"label-studio:{key}".encode()).decode()
    request.add_header("Authorization", f"Basic {basic}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["model_version"]


def predictions(client: LabelStudio, project: int) -> dict[str, list]:
    """Ask Label Studio to retrieve its model's predictions; the predictions of each text."""
    client.actions.create(
        id="retrieve_tasks_predictions", project=project, selected_items={"all": True}
    )
    tasks = client.tasks.list(project=project, fields="all")
    return {
        task.data["text"]: [
            {"model_version": p.model_version, "score": p.score, "result": p.result}
            for p in task.predictions or []
        ]
        for task in tasks
    }


def connect(client: LabelStudio, config: str, backend: str, key: str) -> int:
    """A project with `config`, our service connected as its model (Basic authentication, and
    the key on the webhook Label Studio makes for it)."""
    project = client.projects.create(title="bert_ner backend", label_config=config)
    client.ml.create(
        project=project.id,
        url=backend,
        title="bert_ner",
        auth_method="BASIC_AUTH",
        basic_auth_user="label-studio",
        basic_auth_pass=key,
        auto_update=True,
    )
    for hook in client.webhooks.list(project=str(project.id)):
        if hook.url.startswith(backend):
            client.webhooks.update(id=hook.id, url=hook.url,
                                   headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    return project.id


def main() -> None:
    url, token, backend, key, config_path, answers_path = sys.argv[1:]
    client = LabelStudio(base_url=url, api_key=token)
    config = Path(config_path).read_text()
    answers = json.loads(Path(answers_path).read_text())
    project = connect(client, config, backend, key)
    client.projects.import_tasks(id=project, request=[{"text": text} for text in answers])
    first_version = backend_version(backend, key)
    before = predictions(client, project)
    for task in client.tasks.list(project=project, fields="all"):
        text = task.data["text"]
        result = [
            {"from_name": "label", "to_name": "text", "type": "labels",
             "value": {"start": s, "end": e, "text": text[s:e], "labels": [label]}}
            for s, e, label in answers[text]
        ]  # fmt: skip
        client.annotations.create(id=task.id, project=project, result=result)
    deadline = time.monotonic() + 600
    version = first_version
    while version == first_version and time.monotonic() < deadline:
        time.sleep(1)
        version = backend_version(backend, key)
    after = predictions(client, project)
    try:
        connect(client, config.replace('value="LOC"', 'value="ORG"'), backend, key)
        refusal = "connected"
    except Exception as err:  # the SDK's ApiError: Label Studio's 400 and its message
        refusal = str(err)
    print(json.dumps({"first_version": first_version, "version": version, "before": before,
                      "after": after, "refusal": refusal}))  # fmt: skip


if __name__ == "__main__":
    main()
