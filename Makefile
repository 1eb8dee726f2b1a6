# The two commands that matter on a fresh machine (see README.md):
#   make up     set everything up, then run the whole system on localhost (facerec up)
#   make test   set everything up, then run every check CI runs
.PHONY: up test setup protos

up: setup
	.venv/bin/facerec up

test:
	scripts/test.sh

setup:
	scripts/setup.sh

protos: setup
	.venv/bin/python scripts/gen_protos.py
