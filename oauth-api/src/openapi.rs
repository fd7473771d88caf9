//! `GET /openapi.json`: an OpenAPI 3.1 description of every route, written by hand
//! beside the router (a unit test checks that every route is described).

use axum::Json;
use serde_json::{Value, json};

/// Every (method, path) the service serves; the router and this list change together.
pub const ROUTES: [(&str, &str); 11] = [
    ("get", "/facebook/login"),
    ("get", "/facebook/callback"),
    ("get", "/api/integrations/facebook"),
    ("get", "/api/integrations/facebook/{page_id}"),
    ("put", "/api/integrations/facebook/{page_id}"),
    ("patch", "/api/integrations/facebook/{page_id}"),
    ("delete", "/api/integrations/facebook/{page_id}"),
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

pub async fn document() -> Json<Value> {
    Json(spec())
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn json_response(description: &str, schema: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

/// The document.
pub fn spec() -> Value {
    let page_param = json!({"name": "page_id", "in": "path", "required": true,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}});
    let auth = json!([{"session": []}, {"operator": []}]);
    let unauthorized = error_response("no session cookie and no valid operator token");
    let not_found = error_response("no such integration visible to the caller");
    json!({
        "openapi": "3.1.0",
        "info": {"title": "pagesync oauth-api", "version": env!("CARGO_PKG_VERSION"),
            "description": "Facebook connect flow, sessions, encrypted page tokens and integrations. Every error is {\"error\": code, \"message\": text}. State-changing requests authenticated by the session cookie must send Content-Type: application/json or an X-Requested-With header (CSRF)."},
        "paths": {
            "/facebook/login": {"get": {
                "summary": "Create a session when there is none and redirect to Facebook's login dialog",
                "responses": {"307": {"description": "redirect to FACEBOOK_DIALOG_URL with client_id, redirect_uri, response_type=code, scope and a signed state; sets the session_id cookie when new"}}}},
            "/facebook/callback": {"get": {
                "summary": "Finish the login: connect every page of the user, subscribe it, self-test it",
                "parameters": [
                    {"name": "code", "in": "query", "schema": {"type": "string"}},
                    {"name": "state", "in": "query", "required": true, "schema": {"type": "string"},
                     "description": "<unix_ts>:<nonce>:<user_uuid>:<base64url HMAC-SHA256 without padding>"},
                    {"name": "error", "in": "query", "schema": {"type": "string"}},
                    {"name": "error_description", "in": "query", "schema": {"type": "string"}}],
                "responses": {
                    "200": json_response("the pages (without tokens) and the self-test results", "ConnectAnswer"),
                    "400": error_response("state tampered, expired, replayed or of another session; missing code; Facebook refused the code"),
                    "502": error_response("Facebook did not answer")}}},
            "/api/integrations/facebook": {"get": {
                "summary": "List the caller's integrations (operators: all)",
                "security": auth,
                "responses": {"200": json_response("integrations", "IntegrationList"), "401": unauthorized}}},
            "/api/integrations/facebook/{page_id}": {
                "get": {"summary": "One integration", "security": auth, "parameters": [page_param],
                    "responses": {"200": json_response("the integration", "Integration"), "401": unauthorized, "404": not_found}},
                "put": {"summary": "Connect a page with a page access token (checked against the Graph API, then stored encrypted and the page subscribed)",
                    "security": auth, "parameters": [page_param],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PutIntegration"}}}},
                    "responses": {"200": json_response("replaced", "Integration"), "201": json_response("created", "Integration"),
                        "400": error_response("malformed JSON or page id"), "401": unauthorized, "403": error_response("CSRF check failed"),
                        "404": not_found, "415": error_response("not JSON"),
                        "422": error_response("wrong fields, or Facebook rejected the token (its message)"),
                        "502": error_response("Facebook did not answer")}},
                "patch": {"summary": "Activate or deactivate polling of a page", "security": auth, "parameters": [page_param],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PatchIntegration"}}}},
                    "responses": {"200": json_response("updated", "Integration"), "400": error_response("malformed JSON"),
                        "401": unauthorized, "403": error_response("CSRF check failed"), "404": not_found, "422": error_response("wrong fields")}},
                "delete": {"summary": "Remove the token and stop polling; the page's history stays", "security": auth, "parameters": [page_param],
                    "responses": {"204": {"description": "deleted"}, "401": unauthorized, "403": error_response("CSRF check failed"), "404": not_found}}},
            "/health": {"get": {"summary": "200 while the process runs", "responses": {"200": {"description": "alive"}}}},
            "/ready": {"get": {"summary": "200 while Postgres and NATS answer", "responses": {"200": {"description": "ready"}, "503": {"description": "{\"status\": \"unavailable\", \"reason\": ...}"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics (pagesync_oauth_api_*)", "responses": {"200": {"description": "text/plain; version=0.0.4"}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}}
        },
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "session_id"},
                "operator": {"type": "http", "scheme": "bearer", "description": "OPERATOR_TOKEN"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "message"],
                    "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
                "PutIntegration": {"type": "object", "required": ["access_token"], "additionalProperties": false,
                    "properties": {"access_token": {"type": "string", "writeOnly": true}, "active": {"type": "boolean", "default": true}}},
                "PatchIntegration": {"type": "object", "required": ["active"], "additionalProperties": false,
                    "properties": {"active": {"type": "boolean"}}},
                "Integration": {"type": "object",
                    "required": ["page_id", "name", "active", "status", "updated_at", "last_webhook_at", "last_poll_at", "webhook_url"],
                    "properties": {"page_id": {"type": "string"}, "name": {"type": ["string", "null"]}, "active": {"type": "boolean"},
                        "status": {"enum": ["active", "inactive", "needs_reauth"]},
                        "updated_at": {"type": "string", "format": "date-time"},
                        "last_webhook_at": {"type": ["string", "null"], "format": "date-time"},
                        "last_poll_at": {"type": ["string", "null"], "format": "date-time"},
                        "webhook_url": {"type": "string"}}},
                "IntegrationList": {"type": "object", "required": ["data"],
                    "properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/Integration"}}}},
                "TestResult": {"oneOf": [
                    {"type": "object", "required": ["status"], "properties": {"status": {"const": "success"}}},
                    {"type": "object", "required": ["status", "message"], "properties": {"status": {"const": "error"}, "message": {"type": "string"}}}]},
                "ConnectAnswer": {"type": "object", "required": ["user_uuid", "pages", "webhook_test", "polling_test"],
                    "properties": {
                        "user_uuid": {"type": "string", "format": "uuid"},
                        "pages": {"type": "object", "properties": {"data": {"type": "array", "items": {"type": "object"}}}},
                        "webhook_test": {"type": "array", "items": {"type": "object", "properties": {
                            "page_id": {"type": "string"}, "type": {"enum": ["metadata", "messages"]}, "result": {"$ref": "#/components/schemas/TestResult"}}}},
                        "polling_test": {"type": "array", "items": {"type": "object", "properties": {
                            "page_id": {"type": "string"}, "type": {"enum": ["metadata", "conversations"]}, "result": {"$ref": "#/components/schemas/TestResult"}}}}}}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described() {
        let spec = spec();
        for (method, path) in ROUTES {
            assert!(
                spec["paths"][path][method].is_object(),
                "{method} {path} missing from openapi.json"
            );
        }
    }
}
