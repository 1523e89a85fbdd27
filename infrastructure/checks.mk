# Infrastructure checks (issue 5), included by the top Makefile: `make infra-check`.
# Uses VENV, BIN and PYTHON from the top Makefile. checkov and the SAM CLI get venvs of their own:
# checkov pins its own HCL parser, which conflicts with python-hcl2 in $(VENV), and aws-sam-cli pins
# many libraries the project does not need.
#
# What each check catches:
#   infra-alarms            template alarms and dashboard differ from monitoring/alerts.yml
#   infra-lint              cfn-lint on the SAM template as written (schemas, references, SAM globals)
#                           and on the QuickSight template it nests (and Terraform deploys)
#   infra-lint-translated   cfn-lint on the template after the SAM transform (generated roles,
#                           permissions and rules; dependency cycles show up only here)
#   infra-checkov           checkov on infrastructure/ (SAM template and Terraform) and on the
#                           translated template; every suppression is inline, with its reason
#   infra-sam-validate      `sam validate --lint`, as the deploy script's SAM CLI sees the template

CHECKOV_VENV := .venv-checkov
SAM_VENV     := .venv-sam
INFRA_BUILD  := build/infra
SAM_TEMPLATE := infrastructure/template.yaml
TRANSLATED   := $(INFRA_BUILD)/template.json
# sam validate needs a Region and credentials to start, though --lint makes no AWS call.
SAM_ENV := AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
           AWS_SESSION_TOKEN=testing SAM_CLI_TELEMETRY=0

.PHONY: infra-check infra-alarms infra-lint infra-lint-translated infra-checkov infra-sam-validate

infra-check: infra-alarms infra-lint infra-lint-translated infra-checkov infra-sam-validate

$(CHECKOV_VENV)/.installed: infrastructure/checks.mk
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov>=3.2,<4'
	touch $@

# aws-sam-cli brings aws-sam-translator, which scripts/sam_translate.py uses.
$(SAM_VENV)/.installed: infrastructure/checks.mk
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet 'aws-sam-cli>=1.120,<2'
	touch $@

infra-alarms: $(VENV)/.installed-dev
	$(BIN)/python scripts/alarms.py --check

infra-lint: $(VENV)/.installed-dev
	$(BIN)/cfn-lint $(SAM_TEMPLATE) infrastructure/quicksight.yaml

# Always regenerated: it depends on the template, the ASL file and the translator.
$(TRANSLATED): $(SAM_VENV)/.installed FORCE
	$(SAM_VENV)/bin/python scripts/sam_translate.py $(SAM_TEMPLATE) $@
	cp infrastructure/quicksight.yaml $(INFRA_BUILD)/  # the nested stack's TemplateURL, beside it

infra-lint-translated: $(VENV)/.installed-dev $(TRANSLATED)
	$(BIN)/cfn-lint $(TRANSLATED)

infra-checkov: $(CHECKOV_VENV)/.installed $(TRANSLATED)
	$(CHECKOV_VENV)/bin/checkov --directory infrastructure --quiet --compact --skip-download
	$(CHECKOV_VENV)/bin/checkov --file $(TRANSLATED) --framework cloudformation --quiet --compact --skip-download

infra-sam-validate: $(SAM_VENV)/.installed
	$(SAM_ENV) $(SAM_VENV)/bin/sam validate --lint --template $(SAM_TEMPLATE)

.PHONY: FORCE
FORCE:
