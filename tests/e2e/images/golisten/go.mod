module landgate.dev/golisten

go 1.24
