package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/edged-dev/edged/agent"
	"github.com/edged-dev/edged/store"
)

func init() {
	register(&Command{
		Name:  "people",
		Usage: "list|show|rename|delete|unknown|reembed [--data DIR] [--json] ...   (the daemon must be stopped)",
		Short: "list, inspect, rename and delete enrolled people; list unknown-face clusters; re-embed the gallery for another backbone",
		Run:   runPeople,
	})
}

func runPeople(ctx context.Context, args []string) (int, error) {
	if len(args) == 0 {
		return exitUsage, usageError("missing subcommand (list, show, rename, delete, unknown, reembed)")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("people "+sub, flag.ContinueOnError)
	sf := addStoreCLIFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	var backbone, models *string
	if sub == "reembed" {
		backbone = addBackboneFlag(fs)
		models = fs.String("models", defaultModelDir(), "model `DIR`")
	}
	var want int
	switch sub {
	case "list", "unknown", "reembed":
		want = 0
	case "show", "delete":
		want = 1
	case "rename":
		want = 2
	default:
		return exitUsage, usageError("unknown subcommand %q (list, show, rename, delete, unknown, reembed)", sub)
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return exitUsage, err
	}
	if len(pos) != want {
		return exitUsage, usageError("people %s takes %d argument(s) (ID or NAME%s), got %d", sub, want,
			map[bool]string{true: ", then the new name", false: ""}[sub == "rename"], len(pos))
	}
	readOnly := sub == "list" || sub == "show" || sub == "unknown"
	st, code, err := sf.open(readOnly)
	if err != nil {
		return code, err
	}
	defer st.Close()
	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", "  ")
	switch sub {
	case "reembed":
		return peopleReembed(ctx, st, sf, *backbone, *models, *asJSON, out)
	case "list":
		return peopleList(st, *asJSON, out)
	case "show":
		return peopleShow(st, pos[0], *asJSON, out)
	case "unknown":
		return peopleUnknown(st, *asJSON, out)
	case "rename":
		p, err := st.RenamePerson(resolvePersonID(st, pos[0]), pos[1])
		if err != nil {
			return exitFailure, err
		}
		if *asJSON {
			return exitOK, out.Encode(p)
		}
		fmt.Printf("renamed %s to %q\n", p.ID, p.Name)
		return exitOK, nil
	default: // delete
		p, err := st.FindPerson(pos[0])
		if err != nil {
			return exitFailure, err
		}
		n, _ := st.SampleCount(p.ID)
		if err := st.DeletePerson(p.ID); err != nil {
			return exitFailure, err
		}
		if *asJSON {
			return exitOK, out.Encode(map[string]any{"deleted": p, "samples": n})
		}
		fmt.Printf("deleted %s %q and %d samples\n", p.ID, p.Name, n)
		return exitOK, nil
	}
}

// resolvePersonID maps a name to its id (an id or unknown name is returned
// as is, for the store to report).
func resolvePersonID(st *store.Store, idOrName string) string {
	if p, err := st.FindPerson(idOrName); err == nil {
		return p.ID
	}
	return idOrName
}

func peopleList(st *store.Store, asJSON bool, out *json.Encoder) (int, error) {
	ss, err := st.Summaries()
	if err != nil {
		return exitFailure, err
	}
	if asJSON {
		if ss == nil {
			ss = []store.PersonSummary{}
		}
		return exitOK, out.Encode(ss)
	}
	if len(ss) == 0 {
		fmt.Println("nobody enrolled")
		return exitOK, nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSAMPLES\tCLUSTERS\tNEGATIVES\tENROLLED")
	for _, s := range ss {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", s.ID, s.Name, s.Samples, s.Clusters, s.Negatives, s.Created.Local().Format(time.DateTime))
	}
	return exitOK, tw.Flush()
}

type personDetailJSON struct {
	store.Person
	Samples   []store.Sample   `json:"samples"`
	Clusters  []clusterJSON    `json:"clusters"`
	Head      string           `json:"head,omitempty"`
	Negatives []store.Negative `json:"negatives"`
}

type clusterJSON struct {
	Count   int      `json:"count"`
	Spread  float32  `json:"spread"`
	Samples []string `json:"samples"`
}

func peopleShow(st *store.Store, idOrName string, asJSON bool, out *json.Encoder) (int, error) {
	pd, err := st.Detail(idOrName)
	if err != nil {
		return exitFailure, err
	}
	d := personDetailJSON{Person: pd.Person, Samples: pd.Samples, Head: pd.Clusters.Head, Negatives: pd.Negatives}
	for _, c := range pd.Clusters.Clusters {
		d.Clusters = append(d.Clusters, clusterJSON{Count: c.Count, Spread: c.Spread, Samples: c.Samples})
	}
	if asJSON {
		return exitOK, out.Encode(d)
	}
	fmt.Printf("%s  %s\n  enrolled %s, updated %s\n", d.ID, d.Name, d.Created.Local().Format(time.DateTime), d.Updated.Local().Format(time.DateTime))
	for k, v := range d.Attributes {
		fmt.Printf("  %s: %s\n", k, v)
	}
	fmt.Printf("  %d samples:\n", len(d.Samples))
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "    ID\tSOURCE\tREF\tQUALITY\tCHIP\tADDED")
	for _, s := range d.Samples {
		fmt.Fprintf(tw, "    %s\t%s\t%s\t%.2f\t%v\t%s\n", s.ID, s.Source, s.Ref, s.Quality, s.HasChip, s.Created.Local().Format(time.DateTime))
	}
	tw.Flush()
	fmt.Printf("  %d clusters:", len(d.Clusters))
	for _, c := range d.Clusters {
		fmt.Printf(" [%d samples, spread %.3f]", c.Count, c.Spread)
	}
	fmt.Println()
	fmt.Printf("  %d negative samples (\"not %s\")\n", len(d.Negatives), d.Name)
	return exitOK, nil
}

type unknownJSON struct {
	ID        string    `json:"id"`
	Count     int       `json:"count"`
	Kept      int       `json:"kept"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Cameras   []string  `json:"cameras,omitempty"`
}

func peopleUnknown(st *store.Store, asJSON bool, out *json.Encoder) (int, error) {
	us, err := st.Unknowns()
	if err != nil {
		return exitFailure, err
	}
	list := make([]unknownJSON, 0, len(us))
	for _, u := range us {
		list = append(list, unknownJSON{u.ID, u.Count, len(u.Samples), u.FirstSeen, u.LastSeen, u.Cameras})
	}
	if asJSON {
		return exitOK, out.Encode(list)
	}
	if len(list) == 0 {
		fmt.Println("no unknown faces kept")
		return exitOK, nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSEEN\tKEPT\tFIRST SEEN\tLAST SEEN\tCAMERAS")
	for _, u := range list {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%v\n", u.ID, u.Count, u.Kept, u.FirstSeen.Local().Format(time.DateTime), u.LastSeen.Local().Format(time.DateTime), u.Cameras)
	}
	fmt.Fprintln(tw, "\nname one with: edged enroll --unknown ID --name NAME")
	return exitOK, tw.Flush()
}

// peopleReembed re-embeds, from their stored face crops, every sample and
// negative of another backbone than the configured one (what `edged run`
// does at start after a change of model.backbone), with a progress bar.
// Interrupted, it resumes where it stopped.
func peopleReembed(ctx context.Context, st *store.Store, sf *storeCLIFlags, backbone, models string, asJSON bool, out *json.Encoder) (int, error) {
	bb, err := sf.backbone(backbone)
	if err != nil {
		return exitUsage, err
	}
	var bar *progressBar
	done := 0
	rep, _, err := agent.Reembed(ctx, st, bb, nil, models, func(d, total int) {
		if bar == nil {
			bar = newProgressBar("re-embed", total)
		}
		bar.Add(d - done)
		done = d
	}, sf.logger())
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		if errors.As(err, new(agent.StartupError)) {
			return exitStartup, err
		}
		return exitFailure, fmt.Errorf("re-embed with %s: %w (run it again to resume)", bb.ID, err)
	}
	if asJSON {
		return exitOK, out.Encode(rep)
	}
	msgs := rep.Messages()
	if len(msgs) == 0 {
		msgs = []string{"every stored embedding is already of the " + bb.ID + " backbone: nothing to do"}
	}
	for _, m := range msgs {
		fmt.Println(m)
	}
	if len(rep.NoCrop) > 0 {
		return exitFailure, fmt.Errorf("%d people have samples without a face crop (see above)", len(rep.NoCrop))
	}
	return exitOK, nil
}
