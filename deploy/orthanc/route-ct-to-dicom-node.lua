-- Orthanc auto-routing: every CT series, once stable (no new instance for StableAge seconds), goes to dicom-node
-- (modality "clara" in DicomModalities: deploy/orthanc/dicom-node.json). The node's own results (SEG, SR, secondary
-- captures) are not CT and are never sent back. SendToModality() sends one instance, not a series; the REST call
-- sends every instance of the series in one association, as "Send to DICOM modality" in Orthanc's UI does.
-- A failed send (the node down) is logged by Orthanc and not retried: resend the series from the UI or REST.
function OnStableSeries(seriesId, tags, metadata)
  if tags['Modality'] == 'CT' then
    print('routing CT series ' .. seriesId .. ' to dicom-node')
    RestApiPost('/modalities/clara/store', seriesId)
  end
end
