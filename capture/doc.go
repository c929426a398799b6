// Package capture turns cameras, streams, recorded videos and image files
// into a channel of frames, with the ServiceInput shape used across edged:
//
//	src, err := capture.Open("/dev/video0", capture.DefaultOptions())
//	if err := src.Start(ctx); err != nil { ... }
//	for f := range src.Frames() { ...; f.Release() }
//	src.Close()
//
// Open picks the kind from the URL:
//
//   - "/dev/videoN" or a bare index "N": a V4L2 device (Options.Width,
//     Height, FPS requested);
//   - "rtsp://", "rtsps://", "rtmp://", "http://", "https://": a network stream
//     (OpenCV's FFmpeg backend; its options come from the environment, e.g.
//     OPENCV_FFMPEG_CAPTURE_OPTIONS="rtsp_transport;tcp" for RTSP over TCP,
//     OPENCV_FFMPEG_READ_TIMEOUT in ms);
//   - "gst:PIPELINE": a raw GStreamer pipeline ending in appsink (one is
//     appended when missing), e.g. "gst:videotestsrc ! videoconvert";
//   - an existing directory, a glob ("*?["), or a .jpg/.jpeg/.png file: still
//     images in name order;
//   - any other existing file (or "file://path"): a video file.
//
// Devices, streams and pipelines are live: the frame channel holds one frame
// and the oldest is dropped (and counted) when the consumer is slow, so it
// always gets the latest; after an error or end of stream the source closes
// the capture and reopens it with exponential backoff and jitter, reporting
// each outage through Options.OnEvent (EventDown, then EventUp), until ctx
// ends. Files in ModeRealtime are paced to their frame rate and delivered
// like a camera (latest frame wins); in ModeFast they go as fast as the
// consumer takes them, none dropped.
//
// Frames carry a gocv.Mat (BGR): the last user calls Frame.Release. A file
// that does not exist, is not a video or image, or is truncated gives an
// error (from Open, or as an EventError and Err() at the end), never a crash:
// still images are checked in Go before OpenCV decodes them.
package capture
