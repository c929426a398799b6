package config

// RestartKeys lists the top-level sections that differ between two
// configurations and cannot change without a restart (a reload applies the
// log level, the cameras and their detection and recognition settings; it
// ignores these).
func RestartKeys(old, cur Config) []string {
	var keys []string
	add := func(changed bool, key string) {
		if changed {
			keys = append(keys, key)
		}
	}
	add(old.Device != cur.Device, "device")
	add(old.DataDir != cur.DataDir, "data_dir")
	add(old.ModelDir != cur.ModelDir, "model_dir")
	add(old.HTTP != cur.HTTP, "http")
	mo, mc := old.MQTT, cur.MQTT
	mo.Discovery, mc.Discovery = nil, nil
	add(mo != mc || old.DiscoveryEnabled() != cur.DiscoveryEnabled(), "mqtt")
	so, sc := old.Store, cur.Store
	so.KeepCrops, sc.KeepCrops = nil, nil
	add(so != sc || old.KeepCropsEnabled() != cur.KeepCropsEnabled(), "store")
	add(old.Model != cur.Model, "model.backbone")
	add(old.Pipeline != cur.Pipeline, "pipeline")
	add(old.Detect.Backend != cur.Detect.Backend || old.Detect.NMSThreshold != cur.Detect.NMSThreshold ||
		old.Detect.MaxFaceSize != cur.Detect.MaxFaceSize, "detect.backend/nms_threshold/max_face_size")
	add(old.Recognition.Threshold != cur.Recognition.Threshold || old.Recognition.Margin != cur.Recognition.Margin,
		"recognition.threshold/margin")
	add(old.FinetuneEnabled() != cur.FinetuneEnabled() || old.Finetune.Debounce != cur.Finetune.Debounce, "finetune")
	add(old.Fleet != cur.Fleet, "fleet")
	return keys
}
