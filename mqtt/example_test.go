package mqtt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"time"

	"github.com/edged-dev/edged/mqtt"
)

// The pipeline builds payloads and appends them to the outbox as Events.
func ExampleNewEvent() {
	t := mqtt.At(time.Date(2024, 5, 1, 12, 0, 3, 250e6, time.UTC))
	ev, err := mqtt.NewEvent(mqtt.Recognized{
		// NewEvent gives every event a new event_id and this run's
		// boot_id; fixed here for the example's output.
		EventID: "01HXA3Q8Z7D6ZK0M3W2S4Y5T6V", BootID: "01HXA3P1C2D3E4F5G6H7J8K9M0",
		Camera: "front", Track: 17, PersonID: "01HXA3", Name: "Alice",
		Distance: 0.31, Confidence: 0.92, Box: mqtt.BoxOf(image.Rect(412, 160, 540, 318)),
		Quality: 0.81, Frames: 6, FirstSeen: mqtt.At(t.Add(-1500 * time.Millisecond)), Time: t,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(ev.Topic, ev.Retain)
	fmt.Println(string(ev.Payload))
	// Output:
	// events/recognized false
	// {"type":"recognized","event_id":"01HXA3Q8Z7D6ZK0M3W2S4Y5T6V","boot_id":"01HXA3P1C2D3E4F5G6H7J8K9M0","camera":"front","track":17,"person_id":"01HXA3","name":"Alice","distance":0.31,"confidence":0.92,"box":{"x":412,"y":160,"w":128,"h":158},"quality":0.81,"frames":6,"first_seen":"2024-05-01T12:00:01.750Z","time":"2024-05-01T12:00:03.250Z"}
}

type exampleService struct{ mqtt.Service }

func (exampleService) Rename(_ context.Context, r mqtt.RenameRequest) (mqtt.Person, error) {
	if r.PersonID != "01HXA3" {
		return mqtt.Person{}, mqtt.Errorf(mqtt.CodeUnknownPerson, "no person %q", r.PersonID)
	}
	t := mqtt.At(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC))
	return mqtt.Person{PersonID: r.PersonID, Name: r.Name, Samples: 5, Clusters: 1, Created: t, Updated: t}, nil
}

// Commands are decoded strictly and answered with the reply envelope.
func ExampleRouter() {
	r := mqtt.NewServiceRouter(exampleService{}, mqtt.Limits{}, nil)
	for _, payload := range []string{
		`{"id": "r1", "person_id": "01HXA3", "name": "Alice B."}`,
		`{"id": "r2", "person_id": "nobody", "name": "X"}`,
		`{"id": "r3", "person_id": "01HXA3", "nick": "X"}`,
		`{"person_id": "01HXA3"`,
	} {
		call := r.Decode(mqtt.CmdRename, []byte(payload))
		reply, _ := json.Marshal(r.Run(context.Background(), call))
		fmt.Printf("reply/%s %s\n", call.ReplyTo(), reply)
	}
	// Output:
	// reply/r1 {"id":"r1","ok":true,"result":{"person_id":"01HXA3","name":"Alice B.","samples":5,"clusters":1,"created":"2024-05-01T12:00:00.000Z","updated":"2024-05-01T12:00:00.000Z"}}
	// reply/r2 {"id":"r2","ok":false,"error":{"code":"unknown_person","message":"no person \"nobody\""}}
	// reply/r3 {"id":"r3","ok":false,"error":{"code":"unknown_field","message":"unknown field \"nick\""}}
	// reply/_ {"id":"","ok":false,"error":{"code":"bad_json","message":"not JSON: truncated"}}
}
