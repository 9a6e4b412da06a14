"""The project's cfn-lint rules: `cfn-lint --append-rules lint/cfn_rules -- template.yaml`.

cfn-lint loads every module here by file name (not as a package), so each module stands alone.
"""
