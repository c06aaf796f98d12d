package control

// Routes of the API, each "METHOD PATH" as [net/http.ServeMux] patterns
// spell them. They are written here and nowhere else: [NewHandler] serves
// them and [Client] calls them.
const (
	RouteID            = "GET /v1/id"
	RouteStatus        = "GET /v1/status"
	RoutePairShow      = "POST /v1/pair/show"
	RoutePairScan      = "POST /v1/pair/scan"
	RoutePairWait      = "POST /v1/pair/wait"
	RouteFriends       = "GET /v1/friends"
	RouteFriendBlock   = "POST /v1/friends/block"
	RouteFriendUnblock = "POST /v1/friends/unblock"
	RouteFriendRemove  = "POST /v1/friends/remove"
	RouteDiscover      = "POST /v1/discover"
	RouteNetcheck      = "POST /v1/netcheck"
	RouteRelay         = "POST /v1/relay"
	RouteDevices       = "GET /v1/devices"
	RouteDevicesRevoke = "POST /v1/devices/revoke"
	RouteConvNew       = "POST /v1/conv/new"
	RouteConvList      = "GET /v1/conv"
	RouteConvShow      = "POST /v1/conv/show"
	RouteConvPost      = "POST /v1/conv/post"
	RouteConvVote      = "POST /v1/conv/vote"
	// RouteConvFollow answers with newline-delimited JSON, one
	// [ConvEvent] a line, until the client goes away.
	RouteConvFollow = "POST /v1/conv/follow"
	// RouteConvShowProgress answers with newline-delimited JSON, one
	// [ConvShowEvent] a line: progress, then the view.
	RouteConvShowProgress = "POST /v1/conv/show/progress"

	RouteArchiveStatus = "GET /v1/archive/status"
	RouteArchiveList   = "GET /v1/archive"
	RouteArchiveNow    = "POST /v1/archive/now"
	RouteArchiveGet    = "POST /v1/archive/get"
	RouteArchiveQuota  = "POST /v1/archive/quota"
	// RouteArchiveRecover carries keys derived from the seed phrase.
	RouteArchiveRecover = "POST /v1/archive/recover"
)

// friendRoutes maps each friend action to its route.
var friendRoutes = map[FriendAction]string{
	FriendBlock:   RouteFriendBlock,
	FriendUnblock: RouteFriendUnblock,
	FriendRemove:  RouteFriendRemove,
}

// RouteWebLogin mints a one-time login URL for the web console
// ([WebBackend]).
const RouteWebLogin = "POST /v1/web/login"
