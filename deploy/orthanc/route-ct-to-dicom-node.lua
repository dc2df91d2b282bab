-- Orthanc auto-routing: every CT series, once stable (no new instance for StableAge seconds), goes to dicom-node
-- (modality "clara" in DicomModalities). The node's own results (SEG, SR) are not CT and are never sent back.
function OnStableSeries(seriesId, tags, metadata)
  if tags['Modality'] == 'CT' then
    print('routing CT series ' .. seriesId .. ' to dicom-node')
    SendToModality(seriesId, 'clara')
  end
end
