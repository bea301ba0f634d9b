package frontend

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/rswarm/rswarm/api"
)

// The dashboard is static HTML, CSS and JavaScript built into the binary:
// no build step, nothing fetched from the network. It is served at /ui/
// without the token, like the Swagger UI: the files hold no data and
// change nothing; the page asks the user for the token when the API
// answers 401, and sends it on every API call.

//go:embed ui
var uiFiles embed.FS

// routeUI serves the dashboard at /ui/ and redirects /ui there.
func routeUI(r *gin.Engine) {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // the embedded tree always has ui/
	}
	files := http.StripPrefix("/ui/", http.FileServer(http.FS(sub)))
	r.GET("/ui", func(c *gin.Context) { c.Redirect(http.StatusMovedPermanently, "/ui/") })
	r.GET("/ui/*file", func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		// The page loads only its own files and talks only to this API.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		files.ServeHTTP(c.Writer, c.Request)
	})
}

// Migrator moves a running task from its worker to another: the
// globalmanager, as the frontend sees it for the dashboard's migrate
// button. Its answer is passed through to the client as it is.
type Migrator interface {
	MigrateTask(ctx context.Context, job, task, from, to string) (any, error)
}

// handleMigrateTask relays a task's migration to the globalmanager.
// @Summary Migrate a task (relayed to the globalmanager)
// @Description Moves a running task of the job from the worker it is on to the worker to, as POST /api/v1/migrations on the globalmanager does, and answers what the globalmanager answered. The dashboard's migrate button uses it, so that the browser talks to one address.
// @Tags tasks
// @Accept json
// @Produce json
// @Param name path string true "job_name"
// @Param task path string true "container_name"
// @Param target body object{to=string} true "the worker to move to (node ID, address or host name)"
// @Success 200 {object} object "the globalmanager's MigrateResult"
// @Failure 400 {object} api.ErrorBody "no to, or the task already runs there"
// @Failure 401 {object} api.ErrorBody "no or wrong bearer token"
// @Failure 404 {object} api.ErrorBody "no such job, task or worker"
// @Failure 409 {object} api.ErrorBody "the task does not run (it is on no worker), or the target is not ready or has no room"
// @Failure 503 {object} api.ErrorBody "the globalmanager is not configured or did not answer"
// @Security BearerAuth
// @Router /api/v1/jobs/{name}/tasks/{task}/migrate [post]
func (s *Server) handleMigrateTask(c *gin.Context) {
	b, err := s.body(c)
	if err != nil {
		respond(c, 0, nil, err)
		return
	}
	var req struct {
		To string `json:"to"`
	}
	if err := api.DecodeStrict(b, &req); err != nil {
		respond(c, 0, nil, err)
		return
	}
	if req.To == "" {
		respond(c, 0, nil, api.Invalid("to", "required: the worker to move the task to"))
		return
	}
	if s.cfg.Migrator == nil {
		respond(c, 0, nil, fmt.Errorf("migrations: this frontend has no globalmanager to relay to: %w", api.ErrUnavailable))
		return
	}
	ctx := c.Request.Context()
	t, err := s.task(ctx, c.Param("name"), c.Param("task"))
	if err != nil {
		respond(c, 0, nil, err)
		return
	}
	if t.Node == "" {
		respond(c, 0, nil, fmt.Errorf("task %s is %s on no worker: %w", t.ContainerName, t.Status, api.ErrConflict))
		return
	}
	res, err := s.cfg.Migrator.MigrateTask(ctx, c.Param("name"), t.ContainerName, t.Node, req.To)
	respond(c, http.StatusOK, res, err)
}
