#!/bin/sh
# Per-call stdio AGI entry, rendered into var/asterisk/etc/ivr-agi. Asterisk starts it for each call;
# stdout is the AGI protocol, so everything else goes to var/log/ivr-agi.log.
IVR_HOME='@@HOME@@'
IVR_VAR_DIR='@@VARDIR@@'
export IVR_HOME IVR_VAR_DIR
exec '@@PYTHON@@' -m ivr.cli agi "$@" 2>>'@@VARDIR@@/log/ivr-agi.stderr'
