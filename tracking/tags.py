"""Tag names tunedag's stages share on their MLflow runs and versions (a tag one part alone writes is named there)."""

TAG_STUDY = "tunedag.study"
TAG_TRIAL = "tunedag.trial"
TAG_ROLE = "tunedag.role"
TAG_STATE = "tunedag.state"
TAG_DATA_VERSION = "tunedag.data_version"
TAG_GIT = "tunedag.git_commit"
TAG_FLOW_RUN = "tunedag.prefect_flow_run_id"
TAG_ERROR = "tunedag.error"  # why a run failed or was killed
TAG_PLAN = "tunedag.plan"  # on the pipeline run: resumed, more trials, or warm-started from which study and why
TAG_PROMOTION = "tunedag.promotion"  # on the version and the pipeline run: the decision's reason, whole
TAG_OWNER = "tunedag.owner"  # studies.storage.worker_id() of the process writing into a run while it is RUNNING
