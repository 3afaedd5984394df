-- What a deployment serves and what it has staged (workflows.State's
-- ServingAndStaged, projected by the workflow after each step), as JSON, so
-- a listing shows the serving revision without querying each workflow.
-- NULL: nothing serves / nothing is staged, or not projected since this
-- migration (a live deployment's row fills when its worker next reconciles
-- it, at the worker's start). Numbered 0008: 0006 is left to a branch in
-- flight (the batch webhook) and 0007 is the S3 batches'.
ALTER TABLE algorithms ADD COLUMN serving TEXT;
ALTER TABLE algorithms ADD COLUMN staged TEXT;
