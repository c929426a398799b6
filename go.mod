module github.com/edged-dev/edged

go 1.23

require (
	github.com/wamuir/graft v0.10.0
	gocv.io/x/gocv v0.31.0
)

require (
	github.com/google/go-cmp v0.7.0 // indirect
	google.golang.org/protobuf v1.36.7 // indirect
)
