// The archdsl language server for .arch files: starts `archdsl lsp` (settings `archdsl.server.*`)
// and hands it the `archdsl.plugins` setting. Highlighting and the editing rules need none of this.
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function serverOptions(config) {
  return { command: config.get("server.command"), args: config.get("server.args") };
}

async function activate(context) {
  const config = vscode.workspace.getConfiguration("archdsl");
  if (!config.get("server.enabled")) {
    return;
  }
  client = new LanguageClient("archdsl", "archdsl", serverOptions(config), {
    documentSelector: [{ scheme: "file", language: "arch" }],
    initializationOptions: { plugins: config.get("plugins") },
    synchronize: { configurationSection: "archdsl" },
  });
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration("archdsl.server")) {
        vscode.window.showInformationMessage("archdsl: reload the window to restart the language server.");
      }
    }),
  );
  await client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
