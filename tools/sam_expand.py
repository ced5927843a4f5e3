"""Expands infra/template.yaml as CloudFormation's SAM transform would, offline.

Usage: sam_expand.py TEMPLATE PARAMS_JSON OUTPUT_JSON

TEMPLATE is a SAM template, PARAMS_JSON a CloudFormation parameter file ({"Parameters": {...}}),
OUTPUT_JSON the expanded template. A local CodeUri (the template's `..`) becomes the S3 URI that
`sam package` would give it (`s3://package-bucket/<function>.zip`). It runs the pinned aws-sam-translator (installed with
aws-sam-cli by `make infra-tools`), contacts no AWS account and needs no credentials: managed
policies are given by ARN in the template, so none is looked up.
"""

import json
import logging
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoLookups:
    """The managed policy loader: the template names its policies by ARN."""

    def load(self):
        return {}


def packaged(template):
    """Gives every function the S3 CodeUri `sam package` would."""
    template.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
    for name, resource in template.get("Resources", {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            properties = resource.setdefault("Properties", {})
            if not str(properties.get("CodeUri", "")).startswith("s3://"):
                properties["CodeUri"] = f"s3://package-bucket/{name}.zip"
    return template


def main(template_path, params_path, output_path):
    logging.disable(logging.WARNING)
    with open(template_path, encoding="utf-8") as f:
        template = packaged(yaml_parse(f.read()))
    with open(params_path, encoding="utf-8") as f:
        parameters = json.load(f).get("Parameters", {})
    expanded = transform(template, parameters, NoLookups())
    with open(output_path, "w", encoding="utf-8") as f:
        json.dump(expanded, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
