package cli

import (
	"context"

	"github.com/kith-project/kith/internal/control"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// progressMin is the smallest transfer that gets a progress bar.
const progressMin = 1 << 20

// convShow asks for a conversation. On a terminal, without --json, an
// archived conversation's transfer of at least progressMin bytes shows a
// progress bar (vbauerster/mpb) on stderr; otherwise it is a plain
// request.
func (g *globals) convShow(ctx context.Context, c *control.Client, id string) (control.ConvView, error) {
	if g.json || !isTerminal(g.env.Stdout) {
		return c.ConvShow(ctx, id)
	}
	var (
		p   *mpb.Progress
		bar *mpb.Bar
	)
	v, err := c.ConvShowProgress(ctx, id, func(done, total int64) {
		if bar == nil {
			if total < progressMin {
				return
			}
			p = mpb.NewWithContext(ctx, mpb.WithOutput(g.env.Stderr), mpb.WithWidth(100), mpb.WithAutoRefresh())
			bar = p.AddBar(total,
				mpb.PrependDecorators(decor.Name("fetching the archive "), decor.CountersKibiByte("% .1f / % .1f")),
				mpb.AppendDecorators(decor.Percentage()))
		}
		bar.SetCurrent(done)
	})
	if bar != nil {
		if err != nil {
			bar.Abort(true)
		} else {
			bar.SetTotal(-1, true)
		}
		p.Wait()
	}
	return v, err
}
