module landgate.dev/launcher/tests/probe

go 1.24
