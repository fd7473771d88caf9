# shellcheck shell=bash
# scripts/dev --demo: a fake Graph API with a sample page, connected and sent a
# signed sample message, so a newcomer sees a conversation in the console within a
# minute. Development only: it refuses to touch real Facebook credentials.

DEMO_GRAPH_ADDR=${DEMO_GRAPH_ADDR:-127.0.0.1:5010}
DEMO_PAGE_ID=${DEMO_PAGE_ID:-100000000000001}
DEMO_PAGE_TOKEN=demo-page-token-not-secret
# The fake Graph API's app (fake-graph/src/lib.rs: FakeGraph::APP_ID, APP_SECRET).
DEMO_APP_ID=1234567890
DEMO_APP_SECRET=fake-app-secret

# Points the services at the fake, unless the env file holds a real Facebook app.
demo_configure() {
    local app_id
    app_id=$(sed -n 's/^FACEBOOK_APP_ID=//p' "$ENV_FILE")
    if [ -n "$app_id" ] && [ "$app_id" != dev-only-app-id ] && [ "$app_id" != "$DEMO_APP_ID" ]; then
        dev_log "demo OFF: $ENV_FILE names a real Facebook app ($app_id); the demo never uses real credentials"
        demo=0
        return
    fi
    export FACEBOOK_APP_ID=$DEMO_APP_ID FACEBOOK_APP_SECRET=$DEMO_APP_SECRET
    export GRAPH_API_BASE="http://$DEMO_GRAPH_ADDR/v26.0"
    export POLL_INTERVAL=${POLL_INTERVAL:-1m}
    dev_log "demo: fake Graph API at $GRAPH_API_BASE with page $DEMO_PAGE_ID (Demo Shop)"
}

demo_start_graph() {
    "$bindir/fake-graph" --addr "$DEMO_GRAPH_ADDR" --page "$DEMO_PAGE_ID:Demo Shop:$DEMO_PAGE_TOKEN" \
        > >(trap '' INT TERM; exec sed -u "s/^/[fake-graph] /") 2>&1 &
    pids+=($!)
}

# Connects the page by hand (as the Settings form does) and posts a signed message.
demo_seed() {
    local ingest_port=$1 oauth_port=$2 now body signature status
    status=$(curl -s -o /dev/null -w '%{http_code}' -X PUT \
        -H "Authorization: Bearer $OPERATOR_TOKEN" -H 'Content-Type: application/json' \
        -d "{\"access_token\": \"$DEMO_PAGE_TOKEN\", \"active\": true}" \
        "http://127.0.0.1:$oauth_port/api/integrations/facebook/$DEMO_PAGE_ID")
    case $status in 200 | 201) ;; *) dev_log "demo: connecting the sample page answered $status"; return 1 ;; esac
    now=$(($(date +%s) * 1000))
    body="{\"object\":\"page\",\"entry\":[{\"id\":\"$DEMO_PAGE_ID\",\"time\":$now,\"messaging\":[{\"sender\":{\"id\":\"demo-customer\"},\"recipient\":{\"id\":\"$DEMO_PAGE_ID\"},\"timestamp\":$now,\"message\":{\"mid\":\"m_demo_$now\",\"text\":\"Hi! Is the blue jacket still in stock in size M?\"}}]}]}"
    signature=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$DEMO_APP_SECRET" -r | cut -d' ' -f1)
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Hub-Signature-256: sha256=$signature" \
        -H 'Content-Type: application/json' --data-binary "$body" \
        "http://127.0.0.1:$ingest_port/facebook/webhook")
    [ "$status" = 200 ] || { dev_log "demo: the sample webhook answered $status"; return 1; }
    cat >&2 <<DEMO
################################################################################
##  DEMO: open http://localhost:$oauth_port/ and sign in with the operator token
##    $OPERATOR_TOKEN
##  (from $ENV_FILE). "Demo Shop" has a conversation waiting; replies go to the
##  fake Graph API. Send more with docs/operations.md's demo webhook.
################################################################################
DEMO
}
