"""The pipelines file, owned by the platform team (not the application repositories, so nobody can
push a commit that removes their own prod approval).

- `schema`: the models (pipeline, stage, services, rollout, approval, before-task, schedules) and
  the pipelines a push starts (`find_pipelines`)
- `loader`: YAML read with every error located (`check_config_text`, `load_config_text`) and the
  published JSON form
- `store`: the published copy in DynamoDB (`ConfigStore`), which the functions read
- `targets`: the services a stage deploys and the order their locks are taken in, and
  `overrides`: RunTask's overrides of a before-task (standard library only: the one-shot CLI
  reaches both without pydantic)

This package imports none of them: a caller imports the module it uses.
"""
