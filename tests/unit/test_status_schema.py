"""The typed status patches (core/jobstatus.py) and the CRD schema (api/models.py) declare the same
BatchJob status: a field added to one and not the other fails here, not in a cluster."""

from __future__ import annotations

from typing import Any, get_type_hints

import pytest
import yaml
from pydantic import BaseModel

from barge.api import crdgen, models
from barge.core import jobstatus
from barge.core.states import JOB_STATES


@pytest.mark.parametrize(("typed", "model"), [
    pytest.param(jobstatus.JobStatusPatch, models.BatchJobStatus, id="status"),
    pytest.param(jobstatus.AttemptStatus, models.Attempt, id="attempt"),
    pytest.param(jobstatus.ResolvedJob, models.ResolvedJob, id="resolved"),
    pytest.param(jobstatus.Request, models.ResolvedRequest, id="resolved-request"),
    pytest.param(jobstatus.Waiting, models.Waiting, id="waiting"),
])
def test_typed_patches_declare_the_fields_of_the_crd_schema(typed: Any, model: type[BaseModel]) -> None:
    typed_fields = set(get_type_hints(typed))
    schema_fields = set(model.model_fields)
    assert typed_fields == schema_fields, (
        f"only in {typed.__name__}: {sorted(typed_fields - schema_fields)}; "
        f"only in {model.__name__}: {sorted(schema_fields - typed_fields)}")


def test_every_job_state_is_allowed_by_the_generated_crd() -> None:
    crd = yaml.safe_load(crdgen.render("BatchJob"))
    [version] = crd["spec"]["versions"]
    state = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["state"]
    assert state["type"] == "string"
    missing = [s for s in JOB_STATES if s not in state["enum"]]
    assert not missing, f"states the API server would reject: {missing}"
    assert sorted(state["enum"]) == sorted(JOB_STATES), "the enum allows a state the operator never writes"
