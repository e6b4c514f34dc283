"""A script written for AWS Batch, unmodified: it knows nothing of Barge. It submits a job, polls
describe-jobs until the job ends and exits with the container's exit code. Run against Barge with
only AWS_ENDPOINT_URL_BATCH (and the usual AWS credential variables) set.

usage: aws_batch_script.py JOB_QUEUE JOB_DEFINITION"""

import sys
import time

import boto3


def main() -> int:
    queue, definition = sys.argv[1], sys.argv[2]
    batch = boto3.client("batch")
    job = batch.submit_job(jobName="nightly-report", jobQueue=queue, jobDefinition=definition,
                           containerOverrides={"environment": [{"name": "REPORT_DAY", "value": "monday"}]})
    print(f"submitted {job['jobId']}", flush=True)
    while True:
        detail = batch.describe_jobs(jobs=[job["jobId"]])["jobs"][0]
        if detail["status"] in ("SUCCEEDED", "FAILED"):
            break
        time.sleep(1)
    code = detail["container"].get("exitCode")
    print(f"status {detail['status']} exitCode {code}", flush=True)
    return int(code if code is not None else 1)


if __name__ == "__main__":
    sys.exit(main())
